"""The generic repository layer: works for any Django model and imports nothing from the
commerce schema (`domain`). BaseRepository, strict filters, offset and keyset pages, typed
errors and their mapping, transactions with retries, audit machinery, instrumentation."""
