-- agentpref built-in suite: a small secondary school.
PRAGMA foreign_keys = ON;

CREATE TABLE teachers (
  teacher_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  department TEXT NOT NULL,
  hire_year INTEGER NOT NULL
);

CREATE TABLE courses (
  course_id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  teacher_id INTEGER NOT NULL REFERENCES teachers(teacher_id),
  credits INTEGER NOT NULL
);

CREATE TABLE students (
  student_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  grade_level INTEGER NOT NULL,
  city TEXT NOT NULL
);

CREATE TABLE enrollments (
  student_id INTEGER NOT NULL REFERENCES students(student_id),
  course_id INTEGER NOT NULL REFERENCES courses(course_id),
  score INTEGER,
  PRIMARY KEY (student_id, course_id)
);

INSERT INTO teachers VALUES
  (1, 'Helen Park', 'Mathematics', 2008),
  (2, 'Jonas Weber', 'Physics', 2014),
  (3, 'Amara Diallo', 'Literature', 2011),
  (4, 'Peter Novak', 'History', 2019),
  (5, 'Rosa Lind', 'Mathematics', 2021),
  (6, 'Kenji Mori', 'Art', 2016),
  (7, 'Lucia Romano', 'Music', 2022);

INSERT INTO courses VALUES
  (1, 'Algebra I', 1, 4),
  (2, 'Geometry', 5, 4),
  (3, 'Mechanics', 2, 3),
  (4, 'World Poetry', 3, 2),
  (5, 'Modern History', 4, 3),
  (6, 'Statistics', 1, 3),
  (7, 'Drawing', 6, 2),
  (8, 'Electricity', 2, 3),
  (9, 'Choir', 7, 1);

INSERT INTO students VALUES
  (1, 'Ana Ruiz', 10, 'Maplewood'),
  (2, 'Ben Clarke', 11, 'Oakdale'),
  (3, 'Chloe Dubois', 9, 'Maplewood'),
  (4, 'Dev Patel', 12, 'Oakdale'),
  (5, 'Eli Cohen', 10, 'Pinecrest'),
  (6, 'Fatima Noor', 11, 'Maplewood'),
  (7, 'Gus Larsen', 9, 'Pinecrest'),
  (8, 'Hana Sato', 12, 'Oakdale'),
  (9, 'Ivan Petrov', 11, 'Pinecrest'),
  (10, 'Julia Rossi', 10, 'Maplewood');

INSERT INTO enrollments VALUES
  (1, 1, 88), (1, 4, 92), (1, 7, 75),
  (2, 3, 67), (2, 6, 81),
  (3, 1, 95), (3, 2, 90),
  (4, 5, 72), (4, 6, 58), (4, 8, 84),
  (5, 1, 61), (5, 3, 79),
  (6, 4, 97), (6, 5, 88), (6, 2, 73),
  (7, 7, 91),
  (8, 8, 66), (8, 3, 70), (8, 5, NULL),
  (9, 2, 85), (9, 6, 93),
  (10, 4, 80);
