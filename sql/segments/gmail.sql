-- Addresses at Gmail (gmail.com and googlemail.com).
email LIKE '%@gmail.com' OR email LIKE '%@googlemail.com'
