-- agentpref built-in suite: a small outpatient clinic.
PRAGMA foreign_keys = ON;

CREATE TABLE doctors (
  doctor_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  specialty TEXT NOT NULL,
  room INTEGER NOT NULL
);

CREATE TABLE patients (
  patient_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  birth_year INTEGER NOT NULL,
  city TEXT NOT NULL
);

CREATE TABLE appointments (
  appointment_id INTEGER PRIMARY KEY,
  patient_id INTEGER NOT NULL REFERENCES patients(patient_id),
  doctor_id INTEGER NOT NULL REFERENCES doctors(doctor_id),
  appt_date TEXT NOT NULL,
  reason TEXT NOT NULL,
  fee REAL NOT NULL
);

CREATE TABLE prescriptions (
  prescription_id INTEGER PRIMARY KEY,
  appointment_id INTEGER NOT NULL REFERENCES appointments(appointment_id),
  medicine TEXT NOT NULL,
  days INTEGER NOT NULL
);

INSERT INTO doctors VALUES
  (1, 'Dr. Alice Moreau', 'Cardiology', 101),
  (2, 'Dr. Bilal Qureshi', 'Dermatology', 102),
  (3, 'Dr. Carmen Silva', 'Pediatrics', 201),
  (4, 'Dr. David Kim', 'General Practice', 202),
  (5, 'Dr. Elena Popescu', 'General Practice', 203);

INSERT INTO patients VALUES
  (1, 'Arthur Bell', 1954, 'Westbury'),
  (2, 'Beatrice Fox', 1988, 'Eastfield'),
  (3, 'Caleb Reed', 2015, 'Westbury'),
  (4, 'Dana Whitfield', 1972, 'Northam'),
  (5, 'Ethan Cruz', 2018, 'Eastfield'),
  (6, 'Freya Holm', 1995, 'Westbury'),
  (7, 'George Adams', 1949, 'Northam'),
  (8, 'Hannah Lee', 2001, 'Eastfield'),
  (9, 'Isaac Moreno', 1966, 'Westbury'),
  (10, 'Ingrid Shaw', 1980, 'Northam'),
  (11, 'Jack Turner', 2010, 'Eastfield');

INSERT INTO appointments VALUES
  (1, 1, 1, '2024-04-02', 'chest pain', 180.0),
  (2, 2, 2, '2024-04-03', 'rash', 95.0),
  (3, 3, 3, '2024-04-03', 'fever', 70.0),
  (4, 4, 4, '2024-04-05', 'checkup', 60.0),
  (5, 7, 1, '2024-04-08', 'checkup', 150.0),
  (6, 5, 3, '2024-04-09', 'cough', 70.0),
  (7, 6, 5, '2024-04-10', 'headache', 60.0),
  (8, 1, 4, '2024-04-12', 'checkup', 60.0),
  (9, 8, 2, '2024-04-15', 'acne', 95.0),
  (10, 9, 1, '2024-04-16', 'palpitations', 180.0),
  (11, 2, 5, '2024-04-18', 'fever', 60.0),
  (12, 3, 3, '2024-04-22', 'checkup', 70.0),
  (13, 7, 4, '2024-04-23', 'back pain', 60.0),
  (14, 4, 1, '2024-04-25', 'chest pain', 180.0);

INSERT INTO prescriptions VALUES
  (1, 1, 'Aspirin', 30),
  (2, 2, 'Hydrocortisone cream', 14),
  (3, 3, 'Paracetamol syrup', 5),
  (4, 6, 'Cough syrup', 7),
  (5, 7, 'Ibuprofen', 5),
  (6, 9, 'Benzoyl peroxide gel', 60),
  (7, 10, 'Beta blocker', 90),
  (8, 11, 'Paracetamol', 5),
  (9, 13, 'Ibuprofen', 10),
  (10, 14, 'Aspirin', 30),
  (11, 5, 'Statin', 90);
