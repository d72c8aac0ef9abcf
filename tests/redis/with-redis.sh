#!/usr/bin/env bash
# tests/redis/with-redis.sh: run a command against a throwaway redis-server of its own.
#
#   with-redis.sh [--tls] [--acl] -- CMD ARGS...
#
# Picks a free loopback port, writes a redis.conf into a temporary folder (no persistence), starts
# redis-server, waits until it answers, runs CMD with these in its environment, then stops that server
# by its own PID and removes the folder, also when CMD fails or the script is interrupted:
#   SKENE_TEST_REDIS_URL       redis://127.0.0.1:PORT, rediss:// with --tls, user:password@ with --acl
#   SKENE_TEST_REDIS_PORT      the port
#   SKENE_TEST_REDIS_TLS       1 with --tls, else 0
#   SKENE_TEST_REDIS_CA        with --tls: the CA that signed the server's certificate (made here, with
#                              SAN IP:127.0.0.1 and DNS:localhost)
#   SKENE_TEST_TLS_CERT, SKENE_TEST_TLS_KEY   with --tls: that server certificate and its key (PEM), for
#                              another local TLS server of a test to use (trusted through the same CA)
#   SKENE_TEST_REDIS_ACL       1 with --acl (user skene, default user off), else 0
#   SKENE_TEST_REDIS_USER, SKENE_TEST_REDIS_PASSWORD   with --acl (the password is made here, random)
#   SKENE_TEST_REDIS_CONF, SKENE_TEST_REDIS_PIDFILE    to kill the server and start it again on the same
#                              port (`redis-server CONF`); this script stops whatever PID the pidfile
#                              holds at the end
# Without redis-server (or openssl for --tls) it fails: the tests that need Redis never skip.
set -euo pipefail

tls=0
acl=0
while (($#)); do
    case "$1" in
        --tls) tls=1 ;;
        --acl) acl=1 ;;
        --) shift; break ;;
        *) echo "with-redis.sh: unknown argument '$1' (usage: with-redis.sh [--tls] [--acl] -- CMD...)" >&2
           exit 2 ;;
    esac
    shift
done
if (($# == 0)); then
    echo "with-redis.sh: no command (usage: with-redis.sh [--tls] [--acl] -- CMD...)" >&2
    exit 2
fi

die() {
    echo "with-redis.sh: $*" >&2
    exit 1
}

command -v redis-server >/dev/null 2>&1 || die "redis-server not found (scripts/deps installs it)"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (scripts/deps installs it)"
if ((tls)); then
    command -v openssl >/dev/null 2>&1 || die "openssl not found (scripts/deps installs it)"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/skene-redis.XXXXXX")
server_pid=

# Stops the server by the PID it wrote (a test may have replaced it by a new one on the same port),
# then reaps the subshell that started the first one.
cleanup() {
    local status=$?
    set +e
    if [[ -f "$dir/redis.pid" ]]; then
        local pid
        pid=$(cat "$dir/redis.pid" 2>/dev/null)
        if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qa redis-server "/proc/$pid/cmdline" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
            done
            kill -9 "$pid" 2>/dev/null
        fi
    fi
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((tls)); then
    # A CA and a server certificate signed by it, made now, valid two days.
    cat >"$dir/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = Skene test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
EOF
    {
        openssl req -config "$dir/openssl.cnf" -x509 -new -nodes -days 2 -subj "/CN=Skene test CA" \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -extensions ca \
            -keyout "$dir/ca.key" -out "$dir/ca.crt" &&
        openssl req -config "$dir/openssl.cnf" -new -nodes -subj "/CN=localhost" \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout "$dir/server.key" -out "$dir/server.csr" &&
        openssl x509 -req -days 2 -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
            -set_serial 1 -extfile "$dir/openssl.cnf" -extensions server -out "$dir/server.crt" &&
        openssl req -config "$dir/openssl.cnf" -x509 -new -nodes -days 2 -subj "/CN=unused client CA" \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -extensions ca \
            -keyout "$dir/client-ca.key" -out "$dir/client-ca.crt"
    } >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; die "cannot make the test certificates"; }
fi

user=skene
password=
if ((acl)); then
    # Random, with characters a URL must percent-encode.
    password="s3:cr@t/%$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
fi

urlencode() {
    local s=$1 out= c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case "$c" in
            [A-Za-z0-9._~-]) out+=$c ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

cli() {
    local args=(-h 127.0.0.1 -p "$port")
    if ((tls)); then
        args+=(--tls --cacert "$dir/ca.crt")
    fi
    if ((acl)); then
        REDISCLI_AUTH=$password redis-cli "${args[@]}" --user "$user" "$@"
    else
        redis-cli "${args[@]}" "$@"
    fi
}

# Start on a random free port; if another process takes it first, try another.
started=0
for attempt in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        continue    # something listens there
    fi
    {
        echo "bind 127.0.0.1"
        echo "save \"\""
        echo "appendonly no"
        echo "dir $dir"
        echo "pidfile $dir/redis.pid"
        echo "logfile $dir/redis.log"
        echo "daemonize no"
        if ((tls)); then
            echo "port 0"
            echo "tls-port $port"
            echo "tls-cert-file $dir/server.crt"
            echo "tls-key-file $dir/server.key"
            # Redis requires a CA for client certificates (not asked for here). Not the server's own
            # CA: with it, Redis would send that CA along with its certificate, as servers seldom do.
            echo "tls-ca-cert-file $dir/client-ca.crt"
            echo "tls-auth-clients no"
        else
            echo "port $port"
        fi
        if ((acl)); then
            echo "user default off"
            echo "user $user on >$password ~* &* +@all"
        fi
    } >"$dir/redis.conf"
    rm -f "$dir/redis.pid" "$dir/redis.log"
    # In a subshell, so that a test killing the server with SIGKILL does not make bash report it.
    (redis-server "$dir/redis.conf" </dev/null >"$dir/redis.out" 2>&1 || true) 2>/dev/null &
    server_pid=$!
    for _ in $(seq 1 100); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            break
        fi
        if reply=$(cli ping 2>/dev/null) && [[ "$reply" == PONG ]]; then
            started=1
            break
        fi
        sleep 0.05
    done
    if ((started)); then
        break
    fi
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    if ! grep -qi "address already in use" "$dir/redis.log" "$dir/redis.out" 2>/dev/null; then
        cat "$dir/redis.out" "$dir/redis.log" >&2 2>/dev/null || true
        die "redis-server did not start (attempt $attempt, port $port)"
    fi
done
((started)) || die "no free port found for redis-server after 20 attempts"

scheme=redis
((tls)) && scheme=rediss
auth=
if ((acl)); then
    auth="$user:$(urlencode "$password")@"
fi
export SKENE_TEST_REDIS_URL="$scheme://${auth}127.0.0.1:$port"
export SKENE_TEST_REDIS_PORT=$port
export SKENE_TEST_REDIS_TLS=$tls
export SKENE_TEST_REDIS_ACL=$acl
export SKENE_TEST_REDIS_CONF=$dir/redis.conf
export SKENE_TEST_REDIS_PIDFILE=$dir/redis.pid
if ((tls)); then
    export SKENE_TEST_REDIS_CA=$dir/ca.crt
    export SKENE_TEST_TLS_CERT=$dir/server.crt
    export SKENE_TEST_TLS_KEY=$dir/server.key
fi
if ((acl)); then
    export SKENE_TEST_REDIS_USER=$user
    export SKENE_TEST_REDIS_PASSWORD=$password
fi

set +e
"$@"
status=$?
set -e
exit "$status"
