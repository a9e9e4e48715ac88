# shellcheck shell=bash
# Source after .ci/postfix-up.sh: a DNSSEC-signed zone for example.com,
# served by NSD and validated by Unbound, both on loopback ports, for the
# DANE interop test of the mx module (TestInteropDANE).
#
# The zone, signed at run time with fresh keys (ldns-keygen, ldns-signzone):
#   example.com      MX 10 mx.example.com.
#   mx.example.com   A 127.0.0.1, and a TLSA 3 1 1 record for the private
#                    Postfix's STARTTLS port that matches its certificate
#   bad.example.com  MX 10 mxbad.example.com.
#   mxbad.example.com A 127.0.0.1, and a TLSA 3 1 1 record with a wrong digest
# Unbound trusts the zone's KSK as its trust anchor and asks NSD for it
# (stub-zone), so its answers carry the AD bit. It exports
#   RESMTP_DNS_RESOLVER  127.0.0.1:PORT  the validating resolver
#   RESMTP_DANE_PORT     the port of the TLSA records (Postfix's STARTTLS port)
# and resmtp_dns_down stops both servers. It needs root to install the
# packages (nsd, unbound, ldnsutils) and the RESMTP_POSTFIX_* variables.

_resmtp_dns_log() { printf '[dns-up] %s\n' "$*" >&2; }

resmtp_dns_install() {
	if command -v nsd >/dev/null && command -v unbound >/dev/null && command -v ldns-signzone >/dev/null; then
		return 0
	fi
	resmtp_apt_install nsd unbound ldnsutils
}

resmtp_dns_up() {
	resmtp_dns_install || return 1
	local dir ports nsport ubport tlsport digest
	dir=$(mktemp -d /tmp/resmtp-dns.XXXXXX)
	ports=$(_resmtp_free_ports 2) || return 1
	read -r nsport ubport <<<"$ports"
	tlsport=${RESMTP_POSTFIX_TLS_ADDR##*:}
	digest=$(openssl x509 -in "$RESMTP_POSTFIX_CA" -noout -pubkey | openssl pkey -pubin -outform DER |
		openssl dgst -sha256 -hex | sed 's/.*= //')
	cat >"$dir/example.com.zone" <<-EOF
		\$ORIGIN example.com.
		\$TTL 300
		@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300
		@ IN NS ns.example.com.
		ns IN A 127.0.0.1
		@ IN MX 10 mx.example.com.
		mx IN A 127.0.0.1
		_$tlsport._tcp.mx IN TLSA 3 1 1 $digest
		bad IN MX 10 mxbad.example.com.
		mxbad IN A 127.0.0.1
		_$tlsport._tcp.mxbad IN TLSA 3 1 1 $(printf '%064d' 0)
	EOF
	(
		cd "$dir" || exit 1
		ksk=$(ldns-keygen -a ECDSAP256SHA256 -k example.com) &&
			zsk=$(ldns-keygen -a ECDSAP256SHA256 example.com) &&
			ldns-signzone -o example.com. example.com.zone "$ksk" "$zsk" &&
			cp "$ksk.key" trust-anchor.key
	) >"$dir/sign.log" 2>&1 || {
		cat "$dir/sign.log" >&2
		return 1
	}
	cat >"$dir/nsd.conf" <<-EOF
		server:
		  ip-address: 127.0.0.1@$nsport
		  username: ""
		  zonesdir: "$dir"
		  database: ""
		  pidfile: "$dir/nsd.pid"
		  xfrdfile: "$dir/xfrd.state"
		  zonelistfile: "$dir/zone.list"
		  logfile: "$dir/nsd.log"
		remote-control:
		  control-enable: no
		zone:
		  name: example.com
		  zonefile: "$dir/example.com.zone.signed"
	EOF
	cat >"$dir/unbound.conf" <<-EOF
		server:
		  interface: 127.0.0.1@$ubport
		  port: $ubport
		  username: ""
		  chroot: ""
		  directory: "$dir"
		  pidfile: "$dir/unbound.pid"
		  logfile: "$dir/unbound.log"
		  use-syslog: no
		  verbosity: 1
		  val-log-level: 2
		  do-not-query-localhost: no
		  access-control: 127.0.0.0/8 allow
		  module-config: "validator iterator"
		  trust-anchor-file: "$dir/trust-anchor.key"
		  harden-dnssec-stripped: yes
		remote-control:
		  control-enable: no
		stub-zone:
		  name: "example.com"
		  stub-addr: 127.0.0.1@$nsport
	EOF
	nsd -d -c "$dir/nsd.conf" >"$dir/nsd.out" 2>&1 &
	echo $! >"$dir/nsd.bgpid"
	unbound -d -c "$dir/unbound.conf" >"$dir/unbound.out" 2>&1 &
	echo $! >"$dir/unbound.bgpid"
	local deadline=$((SECONDS + 20))
	until drill -p "$ubport" -D mx.example.com @127.0.0.1 A 2>/dev/null | grep -q 'flags:.* ad'; do
		if ((SECONDS > deadline)); then
			_resmtp_dns_log "ERROR: Unbound did not validate mx.example.com within 20s; logs in $dir"
			tail -n 20 "$dir"/*.log "$dir"/*.out >&2
			return 1
		fi
		sleep 0.2
	done
	export RESMTP_DNS_DIR=$dir RESMTP_DNS_RESOLVER=127.0.0.1:$ubport RESMTP_DANE_PORT=$tlsport
	_resmtp_dns_log "up: nsd 127.0.0.1:$nsport, unbound 127.0.0.1:$ubport (validating example.com), TLSA on port $tlsport"
}

resmtp_dns_down() {
	local dir=${RESMTP_DNS_DIR:-}
	[[ -n $dir ]] || return 0
	local f pid i
	for f in "$dir/nsd.bgpid" "$dir/unbound.bgpid"; do
		[[ -f $f ]] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null
		# Wait for it to be gone: it writes its files until it exits.
		for ((i = 0; i < 50 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0); i++)); do
			sleep 0.1
		done
	done
	unset RESMTP_DNS_DIR RESMTP_DNS_RESOLVER RESMTP_DANE_PORT
	rm -rf "$dir"
}
