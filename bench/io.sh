#!/usr/bin/env bash
# exec and http throughput against the tools a user would otherwise reach
# for, measured in the same run: xargs -P32 for processes, curl --parallel
# for HTTP. usage: bench/io.sh path/to/runbook
set -eu
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
now() { date +%s%N; }

median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
R=${ROUNDS:-3}      # rounds, each one of every side: pairs interleaved, medians kept

# --- exec: 1000 x /bin/true, 32 at once
N=1000
: > "$tmp/x.base"; : > "$tmp/x.rb"
for _ in $(seq $R); do
  t0=$(now); seq $N | xargs -P32 -n1 /bin/true; t1=$(now)
  echo $(( (t1 - t0) / 1000 )) >> "$tmp/x.base"
  rb=$(N=$N "$bin" run "$here/scripts/exec_many.lua" -q 2>/dev/null)
  python3 -c "print(int($rb*1e6))" >> "$tmp/x.rb"
done
base=$(median < "$tmp/x.base"); rb_us=$(median < "$tmp/x.rb")
python3 -c "print(f'exec: {$N} x /bin/true, 32 at once: xargs -P32 {$base/1e6:.3f}s, runbook {$rb_us/1e6:.3f}s, ratio {$rb_us/$base:.2f}x (target <= 1.3x; medians of $R rounds)')"
python3 -c "print(f'row|exec fan-out, {$N} x /bin/true, 32 at once|{$rb_us/1e3:.0f} ms|xargs -P32|{$base/1e3:.0f} ms|{$rb_us/$base:.2f}x')"

# --- http: 10000 GETs of a small body, 64 in flight, from one nginx on
# loopback (bench/ installs nginx-light when missing: a Python server would
# be the bottleneck for both clients)
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
mkdir -p "$tmp/www" "$tmp/logs"; chmod 755 "$tmp" "$tmp/www"   # nginx workers run unprivileged
head -c 64 /dev/zero | tr '\0' x > "$tmp/www/small"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/logs; proxy_temp_path $tmp/logs; fastcgi_temp_path $tmp/logs;
  uwsgi_temp_path $tmp/logs; scgi_temp_path $tmp/logs;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$port; root $tmp/www; }
}
NGX
nginx -c "$tmp/nginx.conf" -p "$tmp" & srv=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/small" >/dev/null && break; sleep 0.05; done
url="http://127.0.0.1:$port/small"
H=${HTTP_N:-10000}
for _ in $(seq $H); do echo "url = \"$url\""; echo "output = /dev/null"; done > "$tmp/curl.cfg"
lua_out() { N=$H URL=$url "$bin" run "$here/scripts/http_many.lua" -q 2>"$tmp/rb.err" || { cat "$tmp/rb.err" >&2; exit 1; }; }
: > "$tmp/h.base"; : > "$tmp/h.rb"
for _ in $(seq $R); do
  t0=$(now); curl -s --parallel --parallel-max 64 -K "$tmp/curl.cfg" >/dev/null 2>&1; t1=$(now)
  echo $(( (t1 - t0) / 1000 )) >> "$tmp/h.base"
  rb=$(lua_out)
  python3 -c "print(int($rb*1e6))" >> "$tmp/h.rb"
done
cbase=$(median < "$tmp/h.base"); rb_us=$(median < "$tmp/h.rb")
python3 -c "print(f'http: {$H} GETs, 64 in flight, one loopback nginx: curl --parallel {$cbase/1e6:.3f}s, runbook {$rb_us/1e6:.3f}s, ratio {$rb_us/$cbase:.2f}x (target <= 1.3x; medians of $R rounds)')"
python3 -c "print(f'row|HTTP fan-out, {$H} GETs, 64 in flight|{$rb_us/1e3:.0f} ms|curl --parallel|{$cbase/1e3:.0f} ms|{$rb_us/$cbase:.2f}x')"
