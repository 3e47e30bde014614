#!/bin/sh
# ec2-lab's AuthorizedKeysCommand. It follows eic_curl_authorized_keys (shared/spec/aws-apis.md
# section 3.2) step by step against the lab's IMDS double; the real script refuses to run off EC2.
# Not done: the signer certificate chain, OCSP and RSA-PSS signature checks (the lab has no signer).
# Usage: eic_lab_authorized_keys IMDS_URL USER [FINGERPRINT]
# Like eic_run_authorized_keys, the whole check runs under `timeout 5s` (exit 124 when it fires).
if [ -z "$EIC_LAB_UNDER_TIMEOUT" ] && command -v timeout >/dev/null 2>&1; then
  EIC_LAB_UNDER_TIMEOUT=1 exec timeout 5s "$0" "$@"
fi
imds="$1"; user="$2"; fp="$3"
[ -n "$user" ] || exit 1
token=$(curl -s -f -m 1 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 5" "$imds/latest/api/token") || exit 255
[ -n "$token" ] || exit 255
get() { curl -s -f -m 1 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/$1"; }
instance=$(get instance-id/) || exit 0
[ -n "$instance" ] || exit 0
printf '%s\n' "$instance" | grep -Eq '^i-[0-9a-f]{8,32}$' || exit 255
id "$user" >/dev/null 2>&1 || exit 0
status=$(curl -s -m 1 -I -o /dev/null -w '%{http_code}' -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/managed-ssh-keys/active-keys/$user/")
[ "$status" = 200 ] || exit 0
az=$(get placement/availability-zone/) || exit 255
printf '%s\n' "$az" | grep -Eq '^([a-z]+-){2,3}[0-9][a-z]$' || exit 255
domain=$(get services/domain/) || exit 255
case "$domain" in amazonaws.com|amazonaws.com.cn|c2s.ic.gov|sc2s.sgov.gov) ;; *) exit 255 ;; esac
blob=$(get "managed-ssh-keys/active-keys/$user/") || exit 0
now=$(date +%s)
# Entries: '#' metadata lines, one key line starting with 'ssh', signature lines, a blank line.
keys=$(printf '%s\n\n' "$blob" | awk -v inst="$instance" -v now="$now" '
  /^#Timestamp=/ { ts = substr($0, 12); next }
  /^#Instance=/  { ins = substr($0, 11); next }
  /^#/           { next }
  /^ssh/         { if (key == "") { key = $0; next } }
  /^$/           { if (key != "" && ins == inst && ts + 0 > now + 0) print key; ts = ""; ins = ""; key = ""; next }
')
count=0
out=""
while IFS= read -r line; do
  [ -n "$line" ] || continue
  if [ -n "$fp" ]; then
    got=$(printf '%s\n' "$line" | ssh-keygen -l -f /dev/stdin 2>/dev/null | awk '{ print $2 }')
    [ "$got" = "$fp" ] || continue
  fi
  out="$out$line
"
  count=$((count + 1))
done <<EOT
$keys
EOT
[ "$count" -gt 0 ] || exit 255
printf '%s' "$out"
exit 0
