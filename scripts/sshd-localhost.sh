#!/usr/bin/env bash
# An sshd on 127.0.0.1:2222 that accepts a key made here, for the ssh launcher's test (and
# for trying the launcher by hand): installs openssh-server if missing, makes host keys and
# ~/.ssh/prunesweep-test (no passphrase), authorises it, starts sshd, and checks a login.
# Idempotent; needs root. Stop it with: scripts/sshd-localhost.sh stop
set -euo pipefail
port=2222
key="$HOME/.ssh/prunesweep-test"

if [ "${1:-}" = stop ]; then
    pkill -f "sshd -p $port" || true
    exit 0
fi

dpkg -s openssh-server >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
}
ssh-keygen -A >/dev/null
mkdir -p /run/sshd "$HOME/.ssh"
chmod 700 "$HOME/.ssh"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N "" -f "$key"
grep -qF "$(cat "$key.pub")" "$HOME/.ssh/authorized_keys" 2>/dev/null || cat "$key.pub" >> "$HOME/.ssh/authorized_keys"
chmod 600 "$HOME/.ssh/authorized_keys"
pgrep -f "sshd -p $port" >/dev/null || /usr/sbin/sshd -p "$port" -o ListenAddress=127.0.0.1 -o PermitRootLogin=prohibit-password
for _ in $(seq 1 20); do
    if ssh -p "$port" -i "$key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR 127.0.0.1 true; then
        echo "sshd: 127.0.0.1:$port takes $key"
        exit 0
    fi
    sleep 0.5
done
echo "sshd on 127.0.0.1:$port does not accept $key" >&2
exit 1
