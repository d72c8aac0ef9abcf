#!/usr/bin/env bash
# versions.sh SKENEC SKENE_VM: a deploy while instances wait, and the second signal (ctest
# e2e_versions, under with-redis.sh).
#
# DESIGN.md: "a .skb is stored in Redis by its hash; an instance finishes on the version it started
# with; a new deploy applies to new instances."
#   1. v1 (examples/activation) runs; users 1-20 sign up and wait (real time: a 5-minute timeout).
#   2. SIGTERM: it drains and exits 0.
#   3. v2, the same loop whose email has another subject, runs; users 21-40 sign up under it; then
#      all 40 create their first project.
# Checked: users 1-20 get v1's email (their instances were loaded with v1's bytecode from
# skene:code:{hash}, which v2's worker never had in its file), users 21-40 v2's; both versions are
# in Redis; every instance completed once.
# Then the signals: SIGTERM then SIGINT delivered together (the worker stopped meanwhile) make it
# exit at once with status 3 and the worker.exit line; the state is still clean afterwards.
source "$(dirname "$0")/lib.sh"

e2e_init e2e_versions "$1" "$2"

# v2: a copy of examples/activation whose email subject says so
v2=$RUN_WORK/v2
mkdir -p "$v2"
cp -r "$RUN_ROOT/examples/activation/skene.config.ts" "$RUN_ROOT/examples/activation/templates" "$v2/"
sed -i 's/^subject: Your first project is live, {{name}}$/subject: Version two says hi, {{name}}/' \
    "$v2/templates/activation_welcome.html"
grep -q '^subject: Version two says hi' "$v2/templates/activation_welcome.html" ||
    fatal "could not make v2's subject (has the template's front matter changed?)"

build_skb "$RUN_ROOT/examples/activation/skene.config.ts"
cp "$RUN_SKB" "$RUN_WORK/v1.skb"
plan=$RUN_WORK/plan
for n in $(seq 1 20); do echo "user $n"; done >"$plan.v1"
for n in $(seq 21 40); do echo "user $n"; done >"$plan.v2"
for n in $(seq 1 40); do echo "u$n"; done | sort >"$RUN_WORK/started.expected"
for n in $(seq 1 40); do echo "action $n"; done >"$plan.actions"

waiting() { # waiting LOG N: N condition.wait lines in LOG
    local n
    n=$(grep -c '"event":"condition.wait"' "$1" || true)
    RUN_MISSING="$n of $2 instances waiting"
    ((n >= $2))
}

say "v1: users 1-20 sign up and wait"
worker_start w1
write_plan "$plan.v1"
wait_for 20 "20 instances waiting on v1" waiting "$RUN_WORK/logs/w1.1.jsonl" 20
worker_stop w1

say "v2: users 21-40 sign up; then all 40 create their first project"
build_skb "$v2/skene.config.ts"
cmp -s "$RUN_SKB" "$RUN_WORK/v1.skb" && fatal "v2's bytecode is the same as v1's"
worker_start w1
write_plan "$plan.v2"
wait_for 20 "20 instances waiting on v2" waiting "$RUN_WORK/logs/w1.2.jsonl" 20
write_plan "$plan.actions"
all_completed() {
    local n
    n=$(grep -c '"outcome":"completed"' "$RUN_WORK/logs/w1.2.jsonl" || true)
    RUN_MISSING="$n of 40 completed"
    ((n >= 40))
}
wait_for 30 "40 instances to complete" all_completed
worker_stop w1

say "checks"
codes=$(rkeys 'skene:code:*' | wc -l)
if [[ $codes == 2 ]]; then ok "two bytecode versions in Redis (skene:code:*)"; else fail "skene:code:* holds $codes keys, want 2"; fi
bad=0
for n in $(seq 1 40); do
    f=$(grep -l "^X-Skene-Subject: u$n"$'\r'"\?\$" "$E2E_OUTBOX"/*.eml 2>/dev/null)
    count=$(printf '%s' "$f" | grep -c . || true)
    if [[ $count != 1 ]]; then
        fail "u$n: $count emails, want 1"
        bad=1
        continue
    fi
    if ((n <= 20)); then want='Subject: Your first project is live, '; else want='Subject: Version two says hi, '; fi
    if ! grep -q "^$want" "$f"; then
        fail "u$n started on v$(((n - 1) / 20 + 1)) but got: $(grep '^Subject:' "$f" | tr -d '\r')"
        bad=1
    fi
done
((bad)) || ok "users 1-20 got v1's email (their instances finished on v1), users 21-40 v2's"
check_redis_clean "$RUN_WORK/started.expected" skene:users skene:user_actions

say "the second signal"
worker_start w1
pid=${W_PID[w1]}
kill -STOP "$pid"
kill -TERM "$pid"
kill -INT "$pid"
kill -CONT "$pid"
wait_exit "$pid" 10 || fail "the worker did not exit within 10 s of two signals"
worker_reap w1
rc=$?
if [[ $rc == 3 ]]; then ok "two signals: exit status 3 at once"; else fail "two signals: exit status $rc, want 3"; fi
if grep -q '"event":"worker.exit"' "$RUN_WORK/logs/w1.3.jsonl"; then
    ok "it logged worker.exit"
else
    fail "no worker.exit line"
    show "$RUN_WORK/logs/w1.3.jsonl"
fi
check_redis_clean "$RUN_WORK/started.expected" skene:users skene:user_actions

e2e_done
