# people.awk: the users of the email tests, as a function of their number n, for the writer
# (tests/lib/writes.awk): user n is "User n", u<n>@example.com, with the link ?u=u<n>. The checks
# count on these addresses (u<n>@example.com is user n's email).

function person_name(n) { return "User " n }
function person_email(n) { return "u" n "@example.com" }
function person_link(n) { return "https://app.example.com/setup?u=u" n }
