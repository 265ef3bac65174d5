"""Set-based seeding of the bench database: one INSERT ... SELECT generate_series per table."""

from __future__ import annotations

import psycopg

#: Filler vocabulary for searchable text; none of these contains a search term below.
FILLER_WORDS = tuple(
    " ".join(
        (
            "oak walnut maple birch cedar linen cotton wool silk denim leather canvas velvet",
            "steel copper brass bronze chrome granite marble ceramic glass bamboo rattan",
            "wicker lamp table chair sofa stool bench shelf desk cabinet drawer mirror rug",
            "cushion blanket kettle teapot skillet wok pan pot knife fork spoon ladle whisk",
            "grater bowl plate mug jacket coat scarf glove boot sandal sneaker hat belt",
            "wallet satchel backpack tote hammer wrench drill saw chisel pliers ruler level",
            "clamp ladder bucket hose rake shovel guitar violin drum piano flute trumpet",
            "speaker headphone radio camera tripod lens red blue green yellow orange purple",
            "black white grey silver golden ivory amber teal compact deluxe sturdy modern",
            "rustic vintage nordic urban coastal alpine desert tropic small large medium slim",
            "wide tall short round square oval curved folding portable premium basic",
            "essential travel outdoor indoor garden kitchen office studio workshop",
        )
    ).split()
)
#: In about a third of the names: ranks tens of thousands of hits.
COMMON_TERM = "classic"
#: In a handful of products: answered from the GIN index alone.
RARE_TERM = "quasar"
RARE_COUNT = 12

BENCH_EPOCH = "2025-01-01 00:00:00+00"
HISTORY_EMAIL = "history@bench.example"


def _words_array() -> str:
    return "ARRAY[" + ",".join(f"'{w}'" for w in FILLER_WORDS) + "]::text[]"


def seed_people(conn: psycopg.Connection, *, users: int, categories: int = 50) -> None:
    """Insert categories and users (plus the user whose order history is paged)."""
    conn.execute(
        """
        INSERT INTO categories (name, slug)
        SELECT 'Category ' || g, 'category-' || g FROM generate_series(1, %(n)s) g
        """,
        {"n": categories},
    )
    conn.execute(
        """
        INSERT INTO users (password, is_superuser, email, first_name, last_name, created_at,
                           updated_at)
        SELECT '!bench', false, 'user' || lpad(g::text, 7, '0') || '@bench.example',
               'First' || g, 'Last' || g, t.ts, t.ts
        FROM generate_series(1, %(n)s) g
        CROSS JOIN LATERAL (SELECT %(epoch)s::timestamptz + g * interval '1 minute' AS ts) t
        """,
        {"n": users, "epoch": BENCH_EPOCH},
    )
    conn.execute(
        "INSERT INTO users (password, is_superuser, email) VALUES ('!bench', false, %s)",
        (HISTORY_EMAIL,),
    )


def seed_catalog(conn: psycopg.Connection, *, products: int) -> None:
    """Insert `products` products one second apart; 2 % inactive, 1 % soft-deleted, no stock."""
    conn.execute(
        """
        WITH cats AS (SELECT array_agg(id ORDER BY slug) AS ids FROM categories)
        INSERT INTO products (sku, name, description, category_id, price, is_active,
                              created_at, updated_at, deleted_at)
        SELECT 'P' || lpad(g::text, 9, '0'), 'Product ' || g, 'Catalog item number ' || g,
               cats.ids[1 + g %% cardinality(cats.ids)],
               round((1 + (g::bigint * 7919 %% 100000) / 100.0)::numeric, 2),
               g %% 50 <> 0,
               t.ts, t.ts, CASE WHEN g %% 100 = 0 THEN t.ts END
        FROM generate_series(1, %(n)s) g
        CROSS JOIN cats
        CROSS JOIN LATERAL (SELECT %(epoch)s::timestamptz + g * interval '1 second' AS ts) t
        """,
        {"n": products, "epoch": BENCH_EPOCH},
    )


def clear_commerce(conn: psycopg.Connection) -> None:
    """Empty every table that orders and products live in (TRUNCATE fires no row trigger)."""
    conn.execute(
        "TRUNCATE order_status_history, order_items, inventory_movements, orders, products, "
        "audit_logs RESTART IDENTITY"
    )


def seed_search(conn: psycopg.Connection, *, products: int) -> None:
    """Replace the catalog with `products` products with word-rich names and descriptions."""
    clear_commerce(conn)
    conn.execute("SELECT setseed(0.42)")
    words = _words_array()
    conn.execute(
        f"""
        WITH cats AS (SELECT array_agg(id ORDER BY slug) AS ids FROM categories),
             w AS (SELECT {words} AS a)
        INSERT INTO products (sku, name, description, category_id, price, is_active,
                              created_at, updated_at, deleted_at)
        SELECT 'S' || lpad(g::text, 9, '0'),
               initcap(w.a[1 + floor(random() * cardinality(w.a))::int] || ' '
                       || w.a[1 + floor(random() * cardinality(w.a))::int] || ' '
                       || CASE WHEN random() < 0.35 THEN '{COMMON_TERM} ' ELSE '' END
                       || CASE WHEN g %% %(rare_every)s = 7 THEN '{RARE_TERM} ' ELSE '' END
                       || w.a[1 + floor(random() * cardinality(w.a))::int]),
               (SELECT string_agg(w.a[1 + floor(random() * cardinality(w.a))::int + 0 * i], ' ')
                  FROM generate_series(1, 10 + g %% 3) i)
                 || CASE WHEN random() < 0.05 THEN ' {COMMON_TERM} design' ELSE '' END,
               cats.ids[1 + g %% cardinality(cats.ids)],
               round((1 + (g::bigint * 7919 %% 100000) / 100.0)::numeric, 2),
               g %% 50 <> 3,
               %(epoch)s::timestamptz + g * interval '1 second',
               %(epoch)s::timestamptz + g * interval '1 second',
               CASE WHEN g %% 100 = 11 THEN %(epoch)s::timestamptz END
        FROM generate_series(1, %(n)s) g CROSS JOIN cats CROSS JOIN w
        """,
        {"n": products, "epoch": BENCH_EPOCH, "rare_every": max(products // RARE_COUNT, 1)},
    )


def seed_orders(
    conn: psycopg.Connection, *, products: int, orders: int, history_orders: int, stock: int
) -> None:
    """Replace the catalog with `products` stocked products (with their ledger) and orders.

    Orders (5 lines each, spread over a year, every status) belong round-robin to the
    seeded users; the first `history_orders` belong to the history user.
    """
    clear_commerce(conn)
    conn.execute(
        """
        WITH cats AS (SELECT array_agg(id ORDER BY slug) AS ids FROM categories)
        INSERT INTO products (sku, name, description, category_id, price, stock_quantity,
                              created_at, updated_at)
        SELECT 'O' || lpad(g::text, 6, '0'), 'Orderable ' || g, 'Sold in the order benchmarks',
               cats.ids[1 + g %% cardinality(cats.ids)],
               round((1 + (g::bigint * 7919 %% 20000) / 100.0)::numeric, 2), %(stock)s,
               %(epoch)s::timestamptz, %(epoch)s::timestamptz
        FROM generate_series(1, %(n)s) g CROSS JOIN cats
        """,
        {"n": products, "stock": stock, "epoch": BENCH_EPOCH},
    )
    conn.execute(
        """
        INSERT INTO inventory_movements (product_id, delta, reason)
        SELECT id, stock_quantity, 'initial' FROM products WHERE stock_quantity > 0
        """
    )
    conn.execute("SELECT setseed(0.24)")
    conn.execute(
        """
        WITH u AS (SELECT array_agg(id ORDER BY email) AS ids FROM users WHERE email <> %(hist)s),
             h AS (SELECT id FROM users WHERE email = %(hist)s)
        INSERT INTO orders (number, user_id, status, subtotal, total, placed_at)
        SELECT 'BENCH-' || lpad(g::text, 9, '0'),
               CASE WHEN g <= %(history)s THEN h.id ELSE u.ids[1 + g %% cardinality(u.ids)] END,
               (ARRAY['pending','paid','shipped','delivered','delivered','delivered',
                      'cancelled','refunded'])[1 + floor(random() * 8)::int],
               0, 0,
               %(epoch)s::timestamptz + random() * interval '365 days'
        FROM generate_series(1, %(n)s) g CROSS JOIN u CROSS JOIN h
        """,
        {"n": orders, "history": history_orders, "hist": HISTORY_EMAIL, "epoch": BENCH_EPOCH},
    )
    conn.execute(
        """
        WITH p AS (SELECT id, sku, name, price, (row_number() OVER (ORDER BY sku)) - 1 AS idx
                   FROM products),
             o AS (SELECT id, substring(number FROM 7)::int AS g FROM orders)
        INSERT INTO order_items (order_id, product_id, sku, product_name, unit_price, quantity,
                                 line_total)
        SELECT o.id, p.id, p.sku, p.name, p.price, q.qty, p.price * q.qty
        FROM o CROSS JOIN generate_series(0, 4) k
        CROSS JOIN LATERAL (SELECT 1 + (o.g + k) %% 3 AS qty) q
        JOIN p ON p.idx = (o.g * 5 + k) %% %(n)s
        """,
        {"n": products},
    )
    conn.execute(
        """
        UPDATE orders o SET subtotal = s.t, total = s.t
        FROM (SELECT order_id, sum(line_total) AS t FROM order_items GROUP BY order_id) s
        WHERE s.order_id = o.id
        """
    )
