"""A writer process for the migration scenario: inserts and updates products until told to stop.

Run as `python -m benchmarks.writer <conninfo>`; send a line on stdin to stop. Prints one
JSON document: every write with its wall-clock start time and latency. A separate process,
so the latencies are the database's, not the migrating process's GIL.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import uuid

import psycopg


def main(conninfo: str) -> None:
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    writes: list[tuple[float, str, float]] = []
    errors: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        ids = [
            r[0] for r in conn.execute("SELECT id FROM products ORDER BY md5(id::text) LIMIT 5000")
        ]
        category = conn.execute("SELECT id FROM categories LIMIT 1").fetchone()[0]  # type: ignore[index]
        rng = random.Random(3)
        print("ready", file=sys.stderr, flush=True)
        while not stop.is_set():
            began = time.time()
            t0 = time.perf_counter()
            try:
                if rng.random() < 0.5:
                    conn.execute(
                        "INSERT INTO products (sku, name, price, category_id)"
                        " VALUES (%s, %s, %s, %s)",
                        (
                            f"W{uuid.uuid4().hex[:16]}",
                            "Written during the migration",
                            9.99,
                            category,
                        ),
                    )
                    kind = "insert"
                else:
                    conn.execute(
                        "UPDATE products SET price = price + 0.01, updated_at = now()"
                        " WHERE id = %s",
                        (rng.choice(ids),),
                    )
                    kind = "update"
            except psycopg.Error as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            writes.append((began, kind, (time.perf_counter() - t0) * 1000))
            time.sleep(0.002)
    json.dump({"writes": writes, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
