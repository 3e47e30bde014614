# ec2-broker: edit a user's authorized_keys, run as root by the SSM agent (AWS-RunShellScript).
# Facts: ../shared/spec/keys-and-shell.md §1.4 and §2.
# MODE place: a short-lived key (marker ec2-broker:EXPIRES, expiry-time, timed removal);
# MODE install: a permanent key (marker ec2-broker:installed), not added twice;
# MODE revoke: every line whose key has fingerprint FP goes, never the last key line unless FORCE=yes.
# MODE list: read-only; prints the key lines of every AuthorizedKeysFile entry (see list_keys).
# Generated from src/keys/place_key.sh: the values below are data, single-quoted.
# Exit status: 0 done; 3 no such user; 4 no authorized_keys file to write; 5 the edit failed;
# 6 revoking would remove the last key line (refused).
# Never 194: that status makes the agent reboot the instance (§1.4).
U=@USER@
MODE=@MODE@
KEY=@KEY@
EXPIRES=@EXPIRES@
VALIDITY=@VALIDITY@
FP=@FP@
FORCE=@FORCE@

umask 077
PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"
export PATH
# The agent's cwd is /usr/bin/ (§1.4).
cd / || exit 5

# The edit, also run detached for the timed removal, so it is kept as text (one definition).
# edit_keys FILE LINE OWNER [DROP]: rewrites FILE without the marked lines whose expiry has passed
# and without the lines holding one of the key blobs in DROP (space-separated), appending LINE
# unless empty; a new file gets OWNER and mode 0600, an existing one keeps its own.
# Atomic: a temporary file in the same directory, renamed over FILE; serialised with flock when
# there is one (a lock file .ec2-broker.lock beside FILE).
EDIT=$(cat <<'EOF'
edit_keys() {
  f=$1 add=$2 owner=$3 drop=${4:-} mode=600
  [ -f "$f" ] || [ -n "$add" ] || return 0
  dir=$(dirname "$f")
  # Connections placing keys at once must not lose each other's lines: one editor at a time.
  # (`command exec`: a failed redirection must not end the shell, as a bare special built-in's does.)
  if command -v flock >/dev/null 2>&1 && { command exec 9>>"$dir/.ec2-broker.lock"; } 2>/dev/null; then
    flock -w 10 9
  fi
  now=$(date +%s) || return 5
  tmp=$(mktemp "$dir/.ec2-broker.XXXXXX") || return 5
  if [ -f "$f" ]; then
    awk -v now="$now" -v drop="$drop" 'BEGIN { n = split(drop, d, " "); for (i = 1; i <= n; i++) gone[d[i]] = 1 }
    {
      if (match($0, /ec2-broker:[0-9]+[ \t\r]*$/)) { e = substr($0, RSTART + 11) + 0; if (e <= now) next }
      for (i = 1; i <= NF; i++) if ($i in gone) next
      print
    }' "$f" > "$tmp" || { rm -f "$tmp"; return 5; }
    owner=$(stat -c %u:%g "$f") && mode=$(stat -c %a "$f") || { rm -f "$tmp"; return 5; }
  fi
  if [ -n "$add" ]; then printf '%s\n' "$add" >> "$tmp" || { rm -f "$tmp"; return 5; }; fi
  { chown "$owner" "$tmp" && chmod "$mode" "$tmp"; } || { rm -f "$tmp"; return 5; }
  selinux=no
  if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then selinux=yes; fi
  if [ "$selinux" = yes ] && [ -f "$f" ] && command -v chcon >/dev/null 2>&1; then
    chcon --reference="$f" "$tmp" 2>/dev/null
  fi
  mv -f "$tmp" "$f" || { rm -f "$tmp"; return 5; }
  if [ "$selinux" = yes ] && command -v restorecon >/dev/null 2>&1; then restorecon -F "$f" 2>/dev/null; fi
  return 0
}
EOF
)
eval "$EDIT"

fail() {
  code=$1
  shift
  printf 'ec2-broker: %s\n' "$*" >&2
  exit "$code"
}

# Every AuthorizedKeysFile entry sshd uses for U, one a line, tokens expanded; relative = under
# home (§2.2). Fails when the setting is `none`.
keys_files() {
  sshd_bin=$(command -v sshd 2>/dev/null) || sshd_bin=/usr/sbin/sshd
  entries=$("$sshd_bin" -T -C "user=$U,host=localhost,addr=127.0.0.1" 2>/dev/null |
    awk '$1 == "authorizedkeysfile" { for (i = 2; i <= NF; i++) print $i; exit }')
  [ -n "$entries" ] || entries=.ssh/authorized_keys
  [ "$entries" != none ] || return 1
  printf '%s\n' "$entries" | while IFS= read -r entry; do expand_entry "$entry"; done
}

# The first of them: the file the editing modes write.
keys_file() {
  all=$(keys_files) || return 1
  printf '%s\n' "$all" | head -n 1
}

# expand_entry ENTRY: %h, %u, %U and %% expanded, made absolute.
expand_entry() {
  entry=$(H=$home N=$U I=$uid E=$1 awk 'BEGIN {
    s = ENVIRON["E"]; out = ""
    for (i = 1; i <= length(s); i++) {
      c = substr(s, i, 1)
      if (c == "%" && i < length(s)) {
        n = substr(s, ++i, 1)
        if (n == "%") out = out "%"; else if (n == "h") out = out ENVIRON["H"]
        else if (n == "u") out = out ENVIRON["N"]; else if (n == "U") out = out ENVIRON["I"]
        else out = out c n
      } else out = out c
    }
    print out
  }')
  case $entry in
    /*) printf '%s\n' "$entry" ;;
    *) printf '%s/%s\n' "$home" "$entry" ;;
  esac
}

# Whether sshd knows expiry-time: OpenSSH 7.7 and later; older ones reject the whole line (§2.6).
expiry_supported() {
  sshd_bin=$(command -v sshd 2>/dev/null) || sshd_bin=/usr/sbin/sshd
  v=$({ "$sshd_bin" -V 2>&1; ssh -V 2>&1; } | sed -n 's/.*OpenSSH_\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' | head -n 1)
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 7 ] || { [ "$1" -eq 7 ] && [ "$2" -ge 7 ]; }
}

main() {
  pw=$(getent passwd "$U") && [ -n "$pw" ] ||
    fail 3 "there is no user $U on this instance: connect as a user that exists (ssh USER@HOST)"
  home=$(printf '%s\n' "$pw" | cut -d: -f6)
  uid=$(id -u "$U") && gid=$(id -g "$U") || fail 3 "cannot read the ids of user $U"
  if [ "$MODE" = list ]; then
    list_keys
    return
  fi
  f=$(keys_file) || fail 4 "sshd reads no authorized_keys file for $U (AuthorizedKeysFile none)"
  if [ -L "$f" ]; then f=$(readlink -f "$f") || fail 5 "cannot resolve the symbolic link $f"; fi
  dir=$(dirname "$f")
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir" || fail 5 "cannot create $dir"
    if [ "$dir" = "$home/.ssh" ]; then chown "$uid:$gid" "$dir" && chmod 700 "$dir" || fail 5 "cannot set up $dir"; fi
  fi

  case $MODE in
    install) install_key ;;
    revoke) revoke_key ;;
    *) place_key ;;
  esac
}

# MODE list (read-only: nothing is written, not even a lock file): for each AuthorizedKeysFile
# entry a line `ec2-broker:file PATH` (or `ec2-broker:missing PATH`), then its key lines as they
# are, less blank lines, comments and our own short-lived lines (marker ec2-broker:<expiry>).
# Run Command keeps 24,000 characters of output: past 23,000 the lines are counted, not printed,
# and a last line `ec2-broker:truncated N` says how many were left out.
list_keys() {
  files=$(keys_files) || fail 4 "sshd reads no authorized_keys file for $U (AuthorizedKeysFile none)"
  printf '%s\n' "$files" | while IFS= read -r kf; do
    if [ -f "$kf" ] && [ -r "$kf" ]; then
      printf 'ec2-broker:file %s\n' "$kf"
      awk '{ sub(/\r$/, "") }
        /^[ \t]*(#|$)/ { next }
        /ec2-broker:[0-9]+[ \t]*$/ { next }
        { print }' "$kf"
    else
      printf 'ec2-broker:missing %s\n' "$kf"
    fi
  done | awk -v max=23000 '{ if (n + length($0) + 1 > max) { left++; next } n += length($0) + 1; print }
    END { if (left) printf "ec2-broker:truncated %d\n", left }'
}

# MODE install: the key, permanent and marked, unless a line that does not expire holds it already.
install_key() {
  blob=${KEY#* }
  if [ -f "$f" ] && awk -v b="$blob" '/ec2-broker:[0-9]+[ \t\r]*$/ { next }
      { for (i = 1; i <= NF; i++) if ($i == b) found = 1 } END { exit !found }' "$f"; then
    printf 'the key for %s is already in %s\n' "$U" "$f"
    return 0
  fi
  edit_keys "$f" "$KEY ec2-broker:installed" "$uid:$gid" || fail 5 "cannot write $f"
  printf 'installed the key for %s in %s\n' "$U" "$f"
}

# MODE revoke: the blobs of the key lines with fingerprint FP (ssh-keygen reads each line alone).
revoke_key() {
  [ -f "$f" ] || { printf 'removed 0 of 0 key lines from %s\n' "$f"; return 0; }
  # Without ssh-keygen no line would match, and "removed 0" would read as "not there".
  command -v ssh-keygen >/dev/null 2>&1 || fail 5 "ssh-keygen is not on this instance: cannot tell the keys' fingerprints"
  total=0 hits=0 blobs=
  while IFS= read -r line || [ -n "$line" ]; do
    fp=$(printf '%s\n' "$line" | ssh-keygen -l -E sha256 -f - 2>/dev/null | awk '{ print $2 }')
    [ -n "$fp" ] || continue
    total=$((total + 1))
    [ "$fp" = "$FP" ] || continue
    hits=$((hits + 1))
    set -f
    for word in $line; do
      case $word in AAAA*) blobs="$blobs $word" ;; esac
    done
    set +f
  done < "$f"
  if [ "$hits" -gt 0 ] && [ "$hits" -ge "$total" ] && [ "$FORCE" != yes ]; then
    fail 6 "$f holds no other key than $FP: removing it would lock everyone out of $U (--force removes it anyway)"
  fi
  [ "$hits" -eq 0 ] || edit_keys "$f" '' '' "$blobs" || fail 5 "cannot write $f"
  printf 'removed %s of %s key lines from %s\n' "$hits" "$total" "$f"
}

# MODE place: the short-lived key, and its timed removal.
place_key() {
  options=
  if expiry_supported; then
    # sshd reads the time in its own time zone (a Z suffix only from 9.1, §2.6).
    stamp=$(date -d "@$EXPIRES" +%Y%m%d%H%M%S 2>/dev/null || date -r "$EXPIRES" +%Y%m%d%H%M%S 2>/dev/null)
    [ -n "$stamp" ] && options="expiry-time=\"$stamp\" "
  fi
  edit_keys "$f" "$options$KEY ec2-broker:$EXPIRES" "$uid:$gid" || fail 5 "cannot write $f"
  # Release the lock: the detached removal below must not inherit it.
  exec 9>&-

  # The timed removal, whatever sshd does with the option: a detached shell that sleeps past the
  # expiry, then drops the expired lines (ours among them).
  delay=$((VALIDITY + 2))
  remover="$EDIT
sleep \"\$1\"; edit_keys \"\$2\" '' ''"
  if command -v setsid >/dev/null 2>&1; then
    setsid sh -c "$remover" ec2-broker-expire "$delay" "$f" </dev/null >/dev/null 2>&1 &
  else
    nohup sh -c "$remover" ec2-broker-expire "$delay" "$f" </dev/null >/dev/null 2>&1 &
  fi
  printf 'placed the key for %s in %s until %s\n' "$U" "$f" "$EXPIRES"
  return 0
}

main
status=$?
# Never 194, whatever went wrong (§1.4).
[ "$status" -ne 194 ] || status=5
exit "$status"
