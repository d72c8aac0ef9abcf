# people.awk: the made-up users of the e2e tests, as a function of their number n, shared by the
# writer (tests/lib/writes.awk) and the outbox checker (eml.awk) so the two cannot disagree. User n
# has id u<n>, row users:u<n>; its first project is row user_actions:a<n>. Names and links carry an
# apostrophe and an ampersand, so the HTML part must show them escaped and the text part as is.

function person_name(n,    f) {
  f = n % 5
  return (f == 0 ? "Ada" : f == 1 ? "Grace" : f == 2 ? "Linus" : f == 3 ? "Mary O'Neil" : "Tom & Jerry") " " n
}
function person_email(n) { return "u" n "@example.com" }
function person_link(n) { return "https://app.example.com/setup?u=u" n "&ref=e2e" }

# As the VM escapes a value in an HTML body (vm/interp.c).
function html_escape(s) {
  gsub(/&/, "\\&amp;", s)
  gsub(/</, "\\&lt;", s)
  gsub(/>/, "\\&gt;", s)
  gsub(/"/, "\\&quot;", s)
  gsub(/'/, "\\&#39;", s)
  return s
}
