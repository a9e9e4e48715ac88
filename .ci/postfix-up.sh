# shellcheck shell=bash
#
# Private Postfix + smtp-sink for the interop tests (interop_test.go).
#
#   source .ci/postfix-up.sh      # install if needed, start, export RESMTP_* vars
#   go test -run Interop -v -count=1 .
#   resmtp_interop_down           # stop everything, remove the temp dir
#
#   bash .ci/postfix-up.sh install   # only install the Debian packages
#   bash .ci/postfix-up.sh down DIR  # stop an instance whose shell is gone
#                                    # (also done by the next start)
#
# It needs root: it installs postfix with apt-get, appends the private
# instance's config dir to alternate_config_directories in
# /etc/postfix/main.cf (the entry is removed again by resmtp_interop_down),
# and Postfix's master must run as root. The system Postfix instance is
# never started or touched otherwise.
#
# Exported after a successful start:
#   RESMTP_POSTFIX_ADDR      127.0.0.1:PORT  plain smtpd, no TLS
#   RESMTP_POSTFIX_TLS_ADDR  127.0.0.1:PORT  smtpd offering STARTTLS
#   RESMTP_POSTFIX_CA        PEM file: the self-signed certificate of the
#                            STARTTLS port (DNS:localhost, IP:127.0.0.1),
#                            usable as a root in an x509.CertPool
#   RESMTP_POSTFIX_MAILDIR   the Maildir into which mail to any address
#                            @example.com or @example.org is delivered: one
#                            file in new/ per recipient, with LF line
#                            endings, starting with the headers Postfix adds
#                            (Return-Path, X-Original-To, Delivered-To: RCPT,
#                            Received)
#   RESMTP_POSTFIX_MAILLOG   Postfix's log file
#   RESMTP_SMTPSINK_ADDR     127.0.0.1:PORT  Postfix's smtp-sink(1)
#   RESMTP_INTEROP_DIR       the temp dir holding all of the above
#
# Recipient policy of the Postfix ports (any domain):
#   reject@...    -> 550 5.1.1 at RCPT
#   tempfail@...  -> 450 4.2.0 at RCPT
#   anything else @example.com or @example.org -> delivered
#   any other domain -> 554 5.7.1 Relay access denied

_resmtp_ci_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

_resmtp_log() { printf '[postfix-up] %s\n' "$*" >&2; }

# resmtp_interop_install: install postfix (which ships smtp-sink) and openssl
# from Debian's packages unless already there. Non-interactive, works where no
# init system runs. (Runs in its own bash process: errexit is ignored in a
# function or subshell whose status is tested with || or if.)
resmtp_interop_install() {
	bash "$_resmtp_ci_dir/postfix-up.sh" install
}

_resmtp_install() {
	if [[ -x /usr/sbin/postfix && -x /usr/sbin/smtp-sink && -x /usr/sbin/postconf ]] &&
		command -v openssl >/dev/null; then
		_resmtp_log "postfix $(/usr/sbin/postconf -d -h mail_version 2>/dev/null || echo '?') and openssl already installed"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		_resmtp_log "ERROR: postfix is not installed and this is not root."
		_resmtp_log "  As root run: bash .ci/postfix-up.sh install"
		_resmtp_log "  (or: apt-get install postfix openssl with 'No configuration')"
		return 1
	fi
	local t0=$SECONDS
	export DEBIAN_FRONTEND=noninteractive
	# No main.cf is written and nothing is started by the package.
	echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
	# Where there is no init system, keep invoke-rc.d from trying to start
	# the system instance: a policy-rc.d that denies every action, only for
	# the duration of the install and only if none exists.
	resmtp_apt_install postfix openssl || return 1
	_resmtp_log "installed postfix $(/usr/sbin/postconf -d -h mail_version) in $((SECONDS - t0))s"
}

# resmtp_apt_install PACKAGE...: install Debian packages without starting
# their services: where there is no init system, a policy-rc.d that denies
# every action keeps invoke-rc.d from trying, for the duration of the
# install and only if none exists. The .ci scripts that need packages
# (dns-up.sh, pg-up.sh, the redis section of run) use it too.
resmtp_apt_install() {
	local policy=/usr/sbin/policy-rc.d added_policy= rc=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added_policy=1
	fi
	{
		apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
	} >/tmp/resmtp-apt.log 2>&1 || rc=$?
	if [[ -n $added_policy ]]; then rm -f "$policy"; fi
	if ((rc != 0)); then
		tail -n 50 /tmp/resmtp-apt.log >&2
		printf '[apt] ERROR: apt-get install %s failed (exit %d); full log: /tmp/resmtp-apt.log\n' "$*" "$rc" >&2
		return 1
	fi
}

# _resmtp_free_ports N: print N distinct TCP ports in 20000-32767 that have no
# listener (ports above are the kernel's ephemeral range).
_resmtp_free_ports() {
	local n=$1 used=" " f local_addr state port out=() i
	for f in /proc/net/tcp /proc/net/tcp6; do
		[[ -r $f ]] || continue
		while read -r _ local_addr _ state _; do
			[[ $state == 0A ]] && used+="$((16#${local_addr##*:})) "
		done < <(tail -n +2 "$f")
	done
	for ((i = 0; i < 1000 && ${#out[@]} < n; i++)); do
		port=$((20000 + RANDOM % 12768))
		if [[ $used != *" $port "* ]]; then
			out+=("$port")
			used+="$port "
		fi
	done
	((${#out[@]} == n)) && echo "${out[*]}"
}

# _resmtp_wait_smtp PORT SECONDS: wait until 127.0.0.1:PORT answers with a
# 220 greeting.
_resmtp_wait_smtp() {
	local port=$1 deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		# shellcheck disable=SC2016 # $1 is the inner shell's
		if timeout 3 bash -c '
			exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
			IFS= read -r -t 2 line <&3 || exit 1
			printf "QUIT\r\n" >&3
			[[ $line == 220* ]]' _ "$port" 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# _resmtp_smoke PORT MAILDIR SECONDS: send one message to
# postfix-up-check@example.com over 127.0.0.1:PORT (pipelined, as all replies
# are read at the end) and wait until it is in MAILDIR/new.
_resmtp_smoke() {
	local port=$1 maildir=$2 deadline=$((SECONDS + $3)) replies
	# shellcheck disable=SC2016 # $1 is the inner shell's
	replies=$(timeout 10 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		IFS= read -r -t 5 greeting <&3 && echo "$greeting"
		printf "EHLO postfix-up\r\nMAIL FROM:<postfix-up@example.com>\r\nRCPT TO:<postfix-up-check@example.com>\r\nDATA\r\n" >&3
		sleep 0.2
		printf "Subject: postfix-up smoke test\r\n\r\n..dot\r\n.\r\nQUIT\r\n" >&3
		cat <&3' _ "$port" 2>&1) || true
	if [[ $replies != *"250 2.0.0 Ok: queued"* ]]; then
		_resmtp_log "smoke test: unexpected SMTP replies:"
		printf '%s\n' "$replies" >&2
		return 1
	fi
	while ((SECONDS < deadline)); do
		if compgen -G "$maildir/new/*" >/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# _resmtp_alt_dirs add|remove DIR: keep /etc/postfix/main.cf's
# alternate_config_directories listing DIR (or not), dropping entries whose
# directory no longer exists (left by runs that were killed).
_resmtp_alt_dirs() (
	# Serialize the read-modify-write of main.cf between concurrent runs.
	exec 9>/tmp/resmtp-interop.lock
	flock -w 60 9 || true
	local op=$1 dir=$2 main=/etc/postfix/main.cf cur d new=()
	[[ -e $main ]] || {
		[[ $op == add ]] || return 0
		# 'No configuration' installs no main.cf; postconf needs one.
		printf '# Created by resmtp .ci/postfix-up.sh (only to allow private instances).\ncompatibility_level = 3.6\n' >"$main"
	}
	cur=$(/usr/sbin/postconf -c /etc/postfix -h alternate_config_directories 2>/dev/null) || cur=
	for d in ${cur//,/ }; do
		[[ $d == "$dir" ]] && continue
		[[ $d == */resmtp-interop.* && ! -d $d ]] && continue
		new+=("$d")
	done
	[[ $op == add ]] && new+=("$dir")
	/usr/sbin/postconf -c /etc/postfix -e "alternate_config_directories = ${new[*]}"
)

# resmtp_interop_up: start everything and export the RESMTP_* variables.
resmtp_interop_up() {
	if [[ -n ${RESMTP_INTEROP_DIR:-} && -d ${RESMTP_INTEROP_DIR} ]]; then
		_resmtp_log "already up in $RESMTP_INTEROP_DIR (resmtp_interop_down first to restart)"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		_resmtp_log "ERROR: the private Postfix instance needs root (master(8) runs as root,"
		_resmtp_log "  and /etc/postfix/main.cf must list its config dir). Source it in a root"
		_resmtp_log "  shell (e.g. sudo -s); without the RESMTP_* variables the interop tests skip."
		return 1
	fi
	resmtp_interop_install || return 1
	_resmtp_stop_stale
	local dir
	# In /tmp, not $TMPDIR: the postfix user must be able to reach it.
	dir=$(mktemp -d /tmp/resmtp-interop.XXXXXX) || return 1
	chmod 755 "$dir"
	echo $$ >"$dir/owner.pid" # the shell that sourced this file
	if ! bash "$_resmtp_ci_dir/postfix-up.sh" __up "$dir"; then
		_resmtp_log "ERROR: start failed; last lines of $dir/maillog and smtp-sink.log:"
		tail -n 40 "$dir/maillog" "$dir/smtp-sink.log" >&2 2>/dev/null || true
		RESMTP_INTEROP_DIR=$dir resmtp_interop_down
		return 1
	fi
	# shellcheck disable=SC1091
	. "$dir/env"
	_resmtp_log "up: postfix $RESMTP_POSTFIX_ADDR, postfix+STARTTLS $RESMTP_POSTFIX_TLS_ADDR, smtp-sink $RESMTP_SMTPSINK_ADDR (dir $dir)"
}

# _resmtp_up_in DIR: the work of resmtp_interop_up, run in its own bash process
# with errexit, so that being sourced into an interactive shell is safe.
_resmtp_up_in() {
	local dir=$1 conf=$1/conf
	local p_plain p_tls p_sink uid gid ports
	ports=$(_resmtp_free_ports 3)
	read -r p_plain p_tls p_sink <<<"$ports"
	uid=$(id -u postfix)
	gid=$(id -g postfix)
	mkdir -p "$conf" "$dir/queue" "$dir/data" "$dir/mail"
	chown postfix:postfix "$dir/data" "$dir/mail"
	chmod 755 "$dir/mail"
	: >"$dir/maillog"

	# Certificate for STARTTLS: self-signed, valid for localhost and 127.0.0.1.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-days 7 -subj '/CN=localhost' \
		-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
		-addext 'basicConstraints=critical,CA:TRUE' \
		-addext 'keyUsage=critical,digitalSignature,keyCertSign' \
		-addext 'extendedKeyUsage=serverAuth' \
		-keyout "$conf/key.pem" -out "$conf/cert.pem" 2>"$dir/openssl.log"
	chmod 600 "$conf/key.pem"
	chmod 644 "$conf/cert.pem"

	cat >"$conf/recipient_access" <<'EOF'
reject@		550 5.1.1 Recipient rejected by resmtp test policy
tempfail@	450 4.2.0 Recipient temporarily rejected by resmtp test policy
EOF

	cat >"$conf/main.cf" <<EOF
# Private Postfix instance for resmtp's interop tests (generated).
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-resmtp
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = mx.resmtp.test
mydomain = resmtp.test
myorigin = \$myhostname
mydestination =
relay_domains =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
append_dot_mydomain = no
smtputf8_enable = yes
# Deliver byte for byte: no header rewriting/additions for SMTP clients, no
# 8bit->7bit conversion.
local_header_rewrite_clients =
disable_mime_output_conversion = yes
message_size_limit = 52428800
virtual_mailbox_limit = 0
# Everything local and fast: no delays, generous error limits.
in_flow_delay = 0
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_junk_command_limit = 1000
smtpd_client_event_limit_exceptions = \$mynetworks
# Virtual mailbox delivery into Maildirs under $dir/mail.
virtual_mailbox_domains = example.com, example.org
virtual_mailbox_base = $dir/mail
# One Maildir for all (virtual(8) allows no \$1 substitution in regexp maps);
# each recipient gets its own file, with its own Delivered-To header.
virtual_mailbox_maps = static:Maildir/
virtual_minimum_uid = $uid
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
# No relaying, not even for 127.0.0.1 (554 5.7.1 Relay access denied), and
# nothing ever leaves this machine: no DNS, no outbound SMTP.
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
	check_recipient_access texthash:$conf/recipient_access,
	reject_unauth_destination
default_transport = error:5.7.1 outbound mail disabled in the resmtp test instance
relay_transport = \$default_transport
smtp_dns_support_level = disabled
# TLS: off by default, 'may' on the STARTTLS port (see master.cf).
smtpd_tls_security_level = none
smtpd_tls_cert_file = $conf/cert.pem
smtpd_tls_key_file = $conf/key.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
EOF

	# Same services as Debian's master.cf, none chrooted, plus two smtpd's.
	cat >"$conf/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$p_plain inet n - n - - smtpd
  -o syslog_name=postfix-resmtp/plain
127.0.0.1:$p_tls inet n - n - - smtpd
  -o syslog_name=postfix-resmtp/starttls
  -o smtpd_tls_security_level=may
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

	_resmtp_alt_dirs add "$conf"
	# start also creates the queue directories (post-install create-missing).
	/usr/sbin/postfix -c "$conf" start >>"$dir/postfix-cmd.log" 2>&1 || {
		cat "$dir/postfix-cmd.log" >&2
		return 1
	}

	# smtp-sink (drops privileges to postfix; -4: IPv4 only) advertises
	# PIPELINING, 8BITMIME, AUTH PLAIN LOGIN (answers AUTH with 250, not 235),
	# XCLIENT, XFORWARD, ENHANCEDSTATUSCODES and DSN, then an empty "250 "
	# line; no SIZE, SMTPUTF8, CHUNKING (BDAT is an unknown command: 500) or
	# STARTTLS. It accepts every MAIL, RCPT and message.
	setsid /usr/sbin/smtp-sink -4 -u postfix -h sink.resmtp.test \
		"127.0.0.1:$p_sink" 256 </dev/null >>"$dir/smtp-sink.log" 2>&1 &
	echo $! >"$dir/smtp-sink.pid"

	local p
	for p in "$p_plain" "$p_tls" "$p_sink"; do
		_resmtp_wait_smtp "$p" 30 || {
			_resmtp_log "ERROR: nothing answers on 127.0.0.1:$p after 30s"
			return 1
		}
	done

	# Smoke test: one message through the plain port into its Maildir, so
	# that a delivery problem shows here, with the log, not as test timeouts.
	_resmtp_smoke "$p_plain" "$dir/mail/Maildir" 30 || {
		_resmtp_log "ERROR: smoke-test message not delivered within 30s"
		return 1
	}

	cat >"$dir/env" <<EOF
export RESMTP_INTEROP_DIR='$dir'
export RESMTP_POSTFIX_ADDR='127.0.0.1:$p_plain'
export RESMTP_POSTFIX_TLS_ADDR='127.0.0.1:$p_tls'
export RESMTP_POSTFIX_CA='$conf/cert.pem'
export RESMTP_POSTFIX_MAILDIR='$dir/mail/Maildir'
export RESMTP_POSTFIX_MAILLOG='$dir/maillog'
export RESMTP_SMTPSINK_ADDR='127.0.0.1:$p_sink'
EOF
}

# _resmtp_stop_stale: stop instances whose owning shell is gone (a CI run or
# shell that was killed before it could call resmtp_interop_down).
_resmtp_stop_stale() {
	local d owner
	for d in /tmp/resmtp-interop.*/; do
		d=${d%/}
		[[ -f $d/owner.pid ]] || continue
		owner=$(tr -dc 0-9 <"$d/owner.pid")
		if [[ -n $owner ]] && ! kill -0 "$owner" 2>/dev/null; then
			_resmtp_log "stopping stale instance $d (its shell $owner is gone)"
			RESMTP_INTEROP_DIR=$d resmtp_interop_down
		fi
	done
}

# resmtp_interop_down: stop the private Postfix and smtp-sink, remove the temp
# dir (kept if RESMTP_KEEP=1), unset the variables. Safe to call twice.
resmtp_interop_down() {
	local dir=${RESMTP_INTEROP_DIR:-}
	[[ -n $dir && -d $dir ]] || return 0
	local conf=$dir/conf pid i
	if [[ -f $dir/smtp-sink.pid ]]; then
		pid=$(tr -dc 0-9 <"$dir/smtp-sink.pid")
		# (only if that pid is still our smtp-sink, not a reused pid)
		if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == smtp-sink ]] && kill "$pid" 2>/dev/null; then
			for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	if [[ -f $dir/queue/pid/master.pid ]]; then
		pid=$(tr -dc 0-9 <"$dir/queue/pid/master.pid")
		/usr/sbin/postfix -c "$conf" stop >>"$dir/postfix-cmd.log" 2>&1 || true
		if [[ -n $pid ]]; then
			for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == master ]]; then
				_resmtp_log "postfix master $pid still running after 10s; killing it"
				/usr/sbin/postfix -c "$conf" abort >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
	fi
	_resmtp_alt_dirs remove "$conf" 2>/dev/null || true
	if [[ ${RESMTP_KEEP:-} == 1 ]]; then
		_resmtp_log "stopped; kept $dir"
	else
		rm -rf "$dir"
		_resmtp_log "stopped; removed $dir"
	fi
	unset RESMTP_INTEROP_DIR RESMTP_POSTFIX_ADDR RESMTP_POSTFIX_TLS_ADDR RESMTP_POSTFIX_CA \
		RESMTP_POSTFIX_MAILDIR RESMTP_POSTFIX_MAILLOG RESMTP_SMTPSINK_ADDR
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	# Executed, not sourced.
	case ${1:-} in
	install)
		set -euo pipefail
		_resmtp_install
		;;
	__up)
		set -euo pipefail
		_resmtp_up_in "$2"
		;;
	down)
		# Stop an instance left running by a shell that is gone.
		[[ -n ${2:-} ]] || { echo "usage: bash .ci/postfix-up.sh down /tmp/resmtp-interop.XXXXXX" >&2; exit 2; }
		RESMTP_INTEROP_DIR=$2 resmtp_interop_down
		;;
	*)
		echo "usage: source .ci/postfix-up.sh   (starts the servers, exports RESMTP_* vars;" >&2
		echo "                                    stop them with resmtp_interop_down)" >&2
		echo "       bash .ci/postfix-up.sh install   (only install postfix + openssl)" >&2
		echo "       bash .ci/postfix-up.sh down DIR  (stop the instance in DIR)" >&2
		exit 2
		;;
	esac
else
	resmtp_interop_up
fi
