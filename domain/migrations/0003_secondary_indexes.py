"""Secondary indexes, built with CREATE INDEX CONCURRENTLY so writes never wait on them.

Each build first drops an index of the same name left INVALID by an earlier failed attempt
(RetrySafeAddIndexConcurrently, domain/migration_ops.py), so a failed run is re-run as is.
Databases that applied the earlier version of this file are unaffected: same indexes.
"""

import django.contrib.postgres.indexes
from django.db import migrations, models

from domain import migration_ops
from domain.migration_ops import RetrySafeAddIndexConcurrently as AddIndexConcurrently


class Migration(migration_ops.Migration):
    # CONCURRENTLY cannot run inside a transaction block.
    atomic = False
    # A concurrent build takes SHARE UPDATE EXCLUSIVE, which no read or write waits for,
    # and then waits for the transactions older than itself; lock_timeout also cuts that
    # wait, and a build cut off leaves an INVALID index. So: long enough for ordinary
    # transactions to finish, short enough to stop on an idle-in-transaction session.
    lock_timeout = "1min"
    # A build takes as long as the table needs; a server or role statement_timeout must
    # not abort it half-way (that too leaves an INVALID index).
    statement_timeout = "0"

    dependencies = [
        ("domain", "0002_audit_append_only"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='user',
            index=models.Index(fields=['created_at', 'id'], name='users_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='user',
            index=models.Index(fields=['last_name', 'id'], name='users_last_name_idx'),
        ),
        AddIndexConcurrently(
            model_name='auditlog',
            index=models.Index(fields=['entity_type', 'entity_id', 'occurred_at'], name='audit_entity_idx'),
        ),
        AddIndexConcurrently(
            model_name='auditlog',
            index=models.Index(fields=['actor', 'occurred_at'], name='audit_actor_idx'),
        ),
        AddIndexConcurrently(
            model_name='auditlog',
            index=models.Index(fields=['occurred_at', 'id'], name='audit_occurred_idx'),
        ),
        AddIndexConcurrently(
            model_name='auditlog',
            index=models.Index(fields=['action', 'occurred_at'], name='audit_action_idx'),
        ),
        AddIndexConcurrently(
            model_name='category',
            index=models.Index(fields=['parent'], name='categories_parent_idx'),
        ),
        AddIndexConcurrently(
            model_name='category',
            index=models.Index(fields=['name', 'id'], name='categories_name_idx'),
        ),
        AddIndexConcurrently(
            model_name='order',
            index=models.Index(fields=['user', '-placed_at', '-id'], name='orders_user_placed_idx'),
        ),
        AddIndexConcurrently(
            model_name='order',
            index=models.Index(fields=['placed_at', 'id'], name='orders_placed_idx'),
        ),
        AddIndexConcurrently(
            model_name='order',
            index=models.Index(fields=['status', 'placed_at'], name='orders_status_idx'),
        ),
        AddIndexConcurrently(
            model_name='order',
            index=models.Index(fields=['total', 'id'], name='orders_total_idx'),
        ),
        AddIndexConcurrently(
            model_name='orderstatushistory',
            index=models.Index(fields=['order', 'created_at'], name='order_history_order_idx'),
        ),
        AddIndexConcurrently(
            model_name='orderstatushistory',
            index=models.Index(fields=['actor'], name='order_history_actor_idx'),
        ),
        AddIndexConcurrently(
            model_name='product',
            index=django.contrib.postgres.indexes.GinIndex(fields=['search_vector'], name='products_search_gin'),
        ),
        AddIndexConcurrently(
            model_name='product',
            index=models.Index(fields=['category', 'id'], name='products_category_idx'),
        ),
        AddIndexConcurrently(
            model_name='product',
            index=models.Index(fields=['created_at', 'id'], name='products_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='product',
            index=models.Index(fields=['name', 'id'], name='products_name_idx'),
        ),
        AddIndexConcurrently(
            model_name='product',
            index=models.Index(fields=['price', 'id'], name='products_price_idx'),
        ),
        AddIndexConcurrently(
            model_name='product',
            index=models.Index(fields=['stock_quantity', 'id'], name='products_stock_idx'),
        ),
        AddIndexConcurrently(
            model_name='orderitem',
            index=models.Index(fields=['product'], name='order_items_product_idx'),
        ),
        AddIndexConcurrently(
            model_name='inventorymovement',
            index=models.Index(fields=['product', 'created_at', 'id'], name='inventory_product_idx'),
        ),
        AddIndexConcurrently(
            model_name='inventorymovement',
            index=models.Index(fields=['order'], name='inventory_order_idx'),
        ),
        AddIndexConcurrently(
            model_name='inventorymovement',
            index=models.Index(fields=['created_at', 'id'], name='inventory_created_idx'),
        ),
        AddIndexConcurrently(
            model_name='usersession',
            index=models.Index(condition=models.Q(('revoked_at__isnull', True)), fields=['user', 'expires_at'], name='user_sessions_active_idx'),
        ),
        AddIndexConcurrently(
            model_name='usersession',
            index=models.Index(fields=['expires_at'], name='user_sessions_expires_idx'),
        ),
        AddIndexConcurrently(
            model_name='usersession',
            index=models.Index(fields=['created_at', 'user'], name='user_sessions_created_idx'),
        ),
    ]
