# writes.awk: turns a plan of the app's writes into the Redis protocol (RESP) for `redis-cli --pipe`
# (write_plan in run.sh). Run with LC_ALL=C (lengths in bytes) and -f PEOPLE -f writes.awk, where
# PEOPLE is the people.awk of a test folder: person_name(n), person_email(n) and person_link(n) are
# user n's fields. One plan line, one write:
#   user N        the app's sign-up: MULTI; HSET users:uN name .. email .. activation_link ..;
#                 XADD skene:users * id uN; EXEC
#   user-hset N   the same row, HSET only (a table on a keyspace feed)
#   action N      the first project: MULTI; HSET user_actions:aN user_id uN action_type
#                 first_project_created; XADD skene:user_actions * id aN; EXEC
#   other N       another action of user N (action_type invited_teammate, row user_actions:oN): it
#                 must not count as a first project
# Blank lines and lines starting with # are skipped; anything else is an error (exit 2).

function resp(n, a,    i) {
  printf "*%d\r\n", n
  for (i = 1; i <= n; i++) printf "$%d\r\n%s\r\n", length(a[i]), a[i]
}
function cmd1(x,    a) { a[1] = x; resp(1, a) }
function user_hset(n,    a) {
  a[1] = "HSET"; a[2] = "users:u" n
  a[3] = "name"; a[4] = person_name(n)
  a[5] = "email"; a[6] = person_email(n)
  a[7] = "activation_link"; a[8] = person_link(n)
  resp(8, a)
}
function action(id, n, type,    a, b) {
  cmd1("MULTI")
  a[1] = "HSET"; a[2] = "user_actions:" id; a[3] = "user_id"; a[4] = "u" n
  a[5] = "action_type"; a[6] = type
  resp(6, a)
  b[1] = "XADD"; b[2] = "skene:user_actions"; b[3] = "*"; b[4] = "id"; b[5] = id
  resp(5, b)
  cmd1("EXEC")
}

/^#/ || NF == 0 { next }
NF == 2 && $2 ~ /^[0-9]+$/ {
  if ($1 == "user") {
    cmd1("MULTI")
    user_hset($2)
    x[1] = "XADD"; x[2] = "skene:users"; x[3] = "*"; x[4] = "id"; x[5] = "u" $2
    resp(5, x)
    cmd1("EXEC")
    next
  }
  if ($1 == "user-hset") { user_hset($2); next }
  if ($1 == "action") { action("a" $2, $2, "first_project_created"); next }
  if ($1 == "other") { action("o" $2, $2, "invited_teammate"); next }
}
{ printf "writes.awk: line %d: cannot read '%s'\n", NR, $0 > "/dev/stderr"; bad = 1; exit 2 }
END { if (bad) exit 2 }
