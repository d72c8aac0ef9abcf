#!/usr/bin/env bash
# email_exact_bytes: the exact request skene-vm run sends to Resend for one email, compared with
# tests/email/expected/NAME.request (method, path, the headers that matter, the body byte for byte),
# for a plain email (examples/activation: subject, html and text rendered from its templates) and an
# email of a template stored in Resend (template.config.ts). The user's name and link carry a quote,
# a backslash, an apostrophe, <, >, & and non-ASCII letters, so the JSON escaping and the HTML
# escaping both show. Also: the Idempotency-Key is the key the worker logged in action.attempt, the
# id the worker logged in action.ok is the mock's, and the email is the one `skene-vm simulate`
# renders for the same row.
#   usage: with-redis.sh -- exact_bytes.sh SKENEC SKENE_VM RESEND_MOCK
# SKENE_UPDATE_GOLDEN=1 writes the expected files instead of comparing: check them by hand.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
em_init email_exact_bytes "$@"

name='Zoë "Z" O'\''Neil <z> & co\'
email=zoe@example.com
link='https://app.example.com/setup?u=u1&ref=a/b'

# phase NAME CONFIG WITH_ACTION: one user (u1), and for the activation loop their first project.
phase() {
    local what=$1 config=$2 with_action=$3 expected=$EM_DIR/expected/$1.request
    say "-- $what: $(basename "$(dirname "$config")")/$(basename "$config")"
    rcli FLUSHALL >/dev/null
    W_ALL_LOGS=() # this phase's worker only
    build_skb "$config"
    mock_start --rps 0
    worker_start "$what" --time-scale 100
    rcli HSET users:u1 name "$name" email "$email" activation_link "$link" >/dev/null
    rcli XADD skene:users '*' id u1 >/dev/null
    if ((with_action)); then
        rcli HSET user_actions:a1 user_id u1 action_type first_project_created >/dev/null
        rcli XADD skene:user_actions '*' id a1 >/dev/null
    fi
    wait_for 10 "u1's instance to end" ended u1
    worker_stop "$what"

    local n
    n=$(js requests "$EM_MOCK_LOG" | wc -l)
    ((n == 1)) || fail "$what: $n requests reached the mock (want 1):" "$(js requests "$EM_MOCK_LOG" | cut -f2-6)"
    js request "$EM_MOCK_LOG" 1 >"$RUN_WORK/$what.request"
    if [[ "${SKENE_UPDATE_GOLDEN:-0}" == 1 ]]; then
        mkdir -p "$(dirname "$expected")"
        cp "$RUN_WORK/$what.request" "$expected"
        say "wrote $expected: check it by hand"
    elif cmp -s "$expected" "$RUN_WORK/$what.request"; then
        ok "$what: the request is $(basename "$expected") byte for byte ($(wc -c <"$RUN_WORK/$what.request") bytes)"
    else
        fail "$what: the request differs from $(basename "$expected") (- expected, + sent):"
        diff -u "$expected" "$RUN_WORK/$what.request" | sed -n '3,40p' | sed 's/^/        /'
    fi

    # The worker's own account of it.
    local lines attempt_key sent_key ok_id mock_id outcome
    lines=$(wlog u1)
    attempt_key=$(awk -F'\t' '$2 == "action.attempt" { print $5 }' <<<"$lines")
    ok_id=$(awk -F'\t' '$2 == "action.ok" { print $7 }' <<<"$lines")
    outcome=$(awk -F'\t' '$2 == "instance.end" { print $8 }' <<<"$lines")
    sent_key=$(js requests "$EM_MOCK_LOG" | cut -f7 | head -1)
    mock_id=$(js emails "$EM_MOCK_URL" | cut -f5)
    if [[ -n "$attempt_key" && "$attempt_key" == "$sent_key" && $(wc -l <<<"$attempt_key") == 1 ]]; then
        ok "$what: Idempotency-Key $sent_key is the key of the worker's one action.attempt"
    else
        fail "$what: Idempotency-Key sent '$sent_key', action.attempt logged '$(tr '\n' ' ' <<<"$attempt_key")'"
    fi
    if [[ -n "$mock_id" && "$ok_id" == "$mock_id" && "$outcome" == completed ]]; then
        ok "$what: action.ok logged the mock's id ($mock_id); instance.end completed"
    else
        fail "$what: action.ok id '$ok_id', the mock's '$mock_id', outcome '$outcome'"
    fi

    # The simulator renders the same email for the same row.
    node -e '
        const [name, email, link, withAction] = process.argv.slice(1);
        const ev = [{ at: "0s", table: "users", op: "insert", id: "u1", row: { name, email, activation_link: link } }];
        if (withAction === "1") ev.push({ at: "1s", table: "user_actions", op: "insert", id: "a1",
            row: { user_id: "u1", action_type: "first_project_created" } });
        process.stdout.write(JSON.stringify({ start: "2026-01-05T09:00:00Z", until: "10m", seed: 1, events: ev }));
    ' "$name" "$email" "$link" "$with_action" >"$RUN_WORK/$what.scenario.json"
    if ! SKENE_EMAIL_FROM=$EM_FROM "$SKENE_VM" simulate "$RUN_SKB" "$RUN_WORK/$what.scenario.json" \
        >"$RUN_WORK/$what.sim.jsonl" 2>"$RUN_WORK/$what.sim.err"; then
        show "$RUN_WORK/$what.sim.err"
        fail "$what: skene-vm simulate failed"
    elif js simcheck "$EM_MOCK_LOG" 1 "$RUN_WORK/$what.sim.jsonl" >"$RUN_WORK/$what.simcheck"; then
        ok "$what: the body is the email \`skene-vm simulate\` renders for the same row, under the same key"
    else
        fail "$what: the email sent is not the one the simulator renders:"
        show "$RUN_WORK/$what.simcheck"
    fi
    mock_stop
}

phase activation "$RUN_ROOT/examples/activation/skene.config.ts" 1
phase template "$EM_DIR/template.config.ts" 0
em_done
