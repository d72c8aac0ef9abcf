# eml.awk: checks the outbox's .eml files. Run with -v from='...' -f people.awk -f eml.awk FILES.
# For each file, one line: "ok uN" when the message is the activation email for user uN exactly as
# it must be, else "bad FILE: what is wrong" (the first thing found). Checked: the file is named by
# its X-Skene-Idempotency-Key (and Message-ID); To, From, Subject, X-Skene-Loop; X-Skene-Subject is
# a user of ours; a multipart/alternative body with a text/plain part that has "Nice work, NAME!"
# and the activation link on lines of their own, and a text/html part with both HTML-escaped.

function reset() {
  state = "head"; delete h; part = ""; boundary = ""; text_name = text_link = html_name = html_link = 0
  parts = 0; closed = 0
}
function finish(    key, n, name, want) {
  if (file == "") return
  key = file; sub(/^.*\//, "", key); sub(/\.eml$/, "", key)
  if (h["x-skene-subject"] !~ /^u[0-9]+$/) { print "bad " file ": X-Skene-Subject is '" h["x-skene-subject"] "'"; return }
  n = substr(h["x-skene-subject"], 2) + 0
  name = person_name(n)
  if (h["x-skene-idempotency-key"] != key) { print "bad " file ": X-Skene-Idempotency-Key is '" h["x-skene-idempotency-key"] "', not the file's name"; return }
  if (h["message-id"] != "<" key "@skene.invalid>") { print "bad " file ": Message-ID is '" h["message-id"] "'"; return }
  if (h["to"] != person_email(n)) { print "bad " file ": To is '" h["to"] "', want '" person_email(n) "'"; return }
  if (h["from"] != from) { print "bad " file ": From is '" h["from"] "', want '" from "'"; return }
  want = "Your first project is live, " name
  if (h["subject"] != want) { print "bad " file ": Subject is '" h["subject"] "', want '" want "'"; return }
  if (h["x-skene-loop"] != "activation") { print "bad " file ": X-Skene-Loop is '" h["x-skene-loop"] "'"; return }
  if (boundary == "") { print "bad " file ": not multipart/alternative with a boundary"; return }
  if (!closed) { print "bad " file ": the body does not end with the closing boundary"; return }
  if (!text_name) { print "bad " file ": the text part has no line 'Nice work, " name "!'"; return }
  if (!text_link) { print "bad " file ": the text part has no line '" person_link(n) "'"; return }
  if (!html_name) { print "bad " file ": the html part has no '<h1>Nice work, " html_escape(name) "!</h1>'"; return }
  if (!html_link) { print "bad " file ": the html part has no href=\"" html_escape(person_link(n)) "\""; return }
  print "ok u" n
}

FNR == 1 { finish(); file = FILENAME; reset() }
{ sub(/\r$/, "") }
state == "head" && $0 == "" {
  state = "body"
  if (match(h["content-type"], /boundary="[^"]+"/))
    boundary = substr(h["content-type"], RSTART + 10, RLENGTH - 11)
  next
}
state == "head" {
  i = index($0, ":")
  if (i > 1) h[tolower(substr($0, 1, i - 1))] = substr($0, i + 2)
  next
}
boundary != "" && $0 == "--" boundary "--" { closed = 1; part = ""; next }
boundary != "" && $0 == "--" boundary { state = "parthead"; part = ""; next }
state == "parthead" && $0 == "" { state = "body"; next }
state == "parthead" {
  if (tolower($0) ~ /^content-type: text\/plain/) part = "text"
  if (tolower($0) ~ /^content-type: text\/html/) part = "html"
  next
}
state == "body" && part == "text" {
  n = substr(h["x-skene-subject"], 2) + 0
  if ($0 == "Nice work, " person_name(n) "!") text_name = 1
  if ($0 == person_link(n)) text_link = 1
  next
}
state == "body" && part == "html" {
  n = substr(h["x-skene-subject"], 2) + 0
  if (index($0, "<h1>Nice work, " html_escape(person_name(n)) "!</h1>")) html_name = 1
  if (index($0, "href=\"" html_escape(person_link(n)) "\"")) html_link = 1
  next
}
END { finish() }
