-- agentpref built-in suite: a small online shop.
PRAGMA foreign_keys = ON;

CREATE TABLE customers (
  customer_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  signup_date TEXT NOT NULL
);

CREATE TABLE products (
  product_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT NOT NULL,
  price REAL NOT NULL,
  stock INTEGER NOT NULL
);

CREATE TABLE orders (
  order_id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(customer_id),
  order_date TEXT NOT NULL,
  status TEXT NOT NULL
);

CREATE TABLE order_items (
  order_id INTEGER NOT NULL REFERENCES orders(order_id),
  product_id INTEGER NOT NULL REFERENCES products(product_id),
  quantity INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id)
);

INSERT INTO customers VALUES
  (1, 'Olive Grant', 'Portside', '2022-04-11'),
  (2, 'Ravi Menon', 'Eastwick', '2022-09-30'),
  (3, 'Lena Vogel', 'Portside', '2023-01-15'),
  (4, 'Marcus Hale', 'Northgate', '2023-03-02'),
  (5, 'Yuki Tanaka', 'Eastwick', '2023-06-19'),
  (6, 'Bea Costa', 'Portside', '2023-11-08'),
  (7, 'Sam Okoro', 'Northgate', '2024-01-21');

INSERT INTO products VALUES
  (1, 'Trail Backpack', 'Outdoor', 79.90, 14),
  (2, 'Camping Stove', 'Outdoor', 54.50, 0),
  (3, 'Steel Water Bottle', 'Outdoor', 18.00, 60),
  (4, 'Desk Lamp', 'Home', 32.25, 22),
  (5, 'Wool Blanket', 'Home', 48.00, 9),
  (6, 'Ceramic Mug Set', 'Kitchen', 24.99, 35),
  (7, 'Chef Knife', 'Kitchen', 89.00, 7),
  (8, 'Cast Iron Pan', 'Kitchen', 42.75, 0),
  (9, 'Wireless Earbuds', 'Electronics', 129.00, 18),
  (10, 'Phone Charger', 'Electronics', 15.49, 80),
  (11, 'Smart Speaker', 'Electronics', 99.99, 5),
  (12, 'Yoga Mat', 'Fitness', 29.95, 25);

INSERT INTO orders VALUES
  (1, 1, '2024-01-03', 'delivered'),
  (2, 2, '2024-01-07', 'delivered'),
  (3, 1, '2024-01-19', 'delivered'),
  (4, 3, '2024-02-02', 'cancelled'),
  (5, 4, '2024-02-10', 'delivered'),
  (6, 5, '2024-02-14', 'shipped'),
  (7, 2, '2024-02-25', 'shipped'),
  (8, 6, '2024-03-01', 'pending'),
  (9, 1, '2024-03-05', 'pending'),
  (10, 5, '2024-03-09', 'delivered');

INSERT INTO order_items VALUES
  (1, 1, 1),
  (1, 3, 2),
  (2, 9, 1),
  (3, 6, 1),
  (3, 10, 3),
  (4, 11, 1),
  (5, 7, 1),
  (5, 8, 1),
  (6, 12, 2),
  (6, 3, 1),
  (7, 4, 1),
  (7, 10, 2),
  (8, 5, 1),
  (9, 9, 1),
  (9, 6, 2),
  (10, 1, 1),
  (10, 12, 1),
  (10, 10, 1);
