-- agentpref built-in suite: a small lending library.
PRAGMA foreign_keys = ON;

CREATE TABLE authors (
  author_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  country TEXT NOT NULL,
  birth_year INTEGER
);

CREATE TABLE books (
  book_id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  author_id INTEGER NOT NULL REFERENCES authors(author_id),
  genre TEXT NOT NULL,
  published_year INTEGER NOT NULL,
  pages INTEGER NOT NULL
);

CREATE TABLE members (
  member_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  joined_year INTEGER NOT NULL
);

CREATE TABLE loans (
  loan_id INTEGER PRIMARY KEY,
  book_id INTEGER NOT NULL REFERENCES books(book_id),
  member_id INTEGER NOT NULL REFERENCES members(member_id),
  loan_date TEXT NOT NULL,
  return_date TEXT
);

INSERT INTO authors VALUES
  (1, 'Mara Ellison', 'Canada', 1961),
  (2, 'Tomas Rieger', 'Austria', 1975),
  (3, 'Ada Okafor', 'Nigeria', 1982),
  (4, 'Lin Feng', 'China', 1958),
  (5, 'Sofia Marquez', 'Chile', 1990),
  (6, 'Henrik Dahl', 'Norway', 1949),
  (7, 'Priya Raman', 'India', 1979),
  (8, 'Owen Pryce', 'Wales', 1968);

INSERT INTO books VALUES
  (1, 'The Salt Orchard', 1, 'Fiction', 1998, 312),
  (2, 'Northern Lines', 1, 'Poetry', 2004, 96),
  (3, 'A River in Winter', 2, 'Fiction', 2010, 428),
  (4, 'Counting the Stars', 3, 'Science', 2015, 254),
  (5, 'Small Machines', 3, 'Science', 2019, 198),
  (6, 'The Jade Ledger', 4, 'History', 1992, 540),
  (7, 'Harbour Songs', 5, 'Poetry', 2018, 88),
  (8, 'Glass Cities', 5, 'Fiction', 2021, 366),
  (9, 'Fjord Tales', 6, 'Fiction', 1979, 275),
  (10, 'Iron and Ice', 6, 'History', 1985, 610),
  (11, 'The Monsoon Garden', 7, 'Fiction', 2008, 402),
  (12, 'Spice Routes', 7, 'History', 2013, 488),
  (13, 'Quiet Valleys', 8, 'Travel', 2001, 230),
  (14, 'Coal and Chapel', 8, 'History', 1996, 344),
  (15, 'Maps of the Mind', 3, 'Science', 2022, 280),
  (16, 'Letters from Lisbon', 2, 'Travel', 2016, 210);

INSERT INTO members VALUES
  (1, 'Nina Brooks', 'Springfield', 2015),
  (2, 'Carl Jensen', 'Riverton', 2018),
  (3, 'Aisha Bello', 'Springfield', 2020),
  (4, 'Diego Alvarez', 'Lakeside', 2012),
  (5, 'Emma Stone', 'Riverton', 2021),
  (6, 'Farid Haddad', 'Lakeside', 2019),
  (7, 'Grace Liu', 'Springfield', 2023),
  (8, 'Hugo Martin', 'Hillview', 2017);

INSERT INTO loans VALUES
  (1, 1, 1, '2024-01-05', '2024-01-20'),
  (2, 3, 1, '2024-02-01', '2024-02-18'),
  (3, 4, 2, '2024-01-11', '2024-01-30'),
  (4, 6, 3, '2024-03-02', NULL),
  (5, 8, 4, '2024-02-14', '2024-03-01'),
  (6, 11, 4, '2024-03-10', NULL),
  (7, 4, 5, '2024-03-12', '2024-03-29'),
  (8, 9, 6, '2024-01-22', '2024-02-05'),
  (9, 12, 2, '2024-02-20', '2024-03-08'),
  (10, 1, 7, '2024-03-15', NULL),
  (11, 5, 1, '2024-03-18', NULL),
  (12, 13, 8, '2024-01-09', '2024-01-25'),
  (13, 8, 3, '2024-03-20', NULL),
  (14, 3, 6, '2024-02-27', '2024-03-14'),
  (15, 15, 5, '2024-03-21', NULL),
  (16, 4, 8, '2024-02-03', '2024-02-17');
