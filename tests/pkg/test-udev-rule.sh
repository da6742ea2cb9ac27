#!/bin/sh
# packaging/udev/60-sva.rules: well formed (udevadm verify where udev has
# it, 253 and later; else a parse of every key, operator and value), and it
# gives the node the module registers (kernel/main.c's miscdevice name) to
# one group, read-write, nothing to others; the group is the one the
# documentation tells to create.
set -eu
S=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
R=$S/packaging/udev/60-sva.rules
bad=0
fail() { echo "FAIL: $*"; bad=1; }

if udevadm verify --help > /dev/null 2>&1; then
	udevadm verify --resolve-names=never "$R" || fail "udevadm verify"
else
	echo "udevadm verify: not in this udev ($(udevadm --version 2>/dev/null || echo none)); parsing"
fi
# Each rule: KEY[{attr}] OP "value" pairs separated by commas; match keys
# compare (== !=), the others assign (= += -= :=).
awk '
/^[[:space:]]*(#|$)/ { next }
{
	line = $0
	while (length(line)) {
		if (!match(line, /^[[:space:]]*[A-Z_]+(\{[^}]*\})?[[:space:]]*(==|!=|\+=|-=|:=|=)[[:space:]]*"[^"]*"[[:space:]]*/)) {
			printf "%s:%d: cannot parse: %s\n", FILENAME, NR, line
			bad = 1
			break
		}
		pair = substr(line, 1, RLENGTH)
		line = substr(line, RLENGTH + 1)
		key = pair; sub(/^[[:space:]]*/, "", key); sub(/[{=!+:-].*/, "", key)
		op = pair; sub(/^[^=!+:-]*/, "", op); sub(/".*/, "", op); gsub(/[[:space:]]/, "", op)
		if (key ~ /^(ACTION|DEVPATH|KERNEL|KERNELS|NAME|SUBSYSTEM|SUBSYSTEMS|DRIVER|DRIVERS|ATTRS|TAGS|TEST|PROGRAM|RESULT)$/) {
			if (op != "==" && op != "!=") {
				printf "%s:%d: match key %s with %s\n", FILENAME, NR, key, op
				bad = 1
			}
		} else if (key ~ /^(OWNER|GROUP|MODE|LABEL|GOTO|OPTIONS|RUN|IMPORT|SYMLINK|SECLABEL|SYSCTL)$/) {
			if (op == "==" || op == "!=") {
				printf "%s:%d: assignment key %s with %s\n", FILENAME, NR, key, op
				bad = 1
			}
		} else if (key !~ /^(ATTR|ENV|TAG|CONST)$/) {
			printf "%s:%d: unknown key %s\n", FILENAME, NR, key
			bad = 1
		}
		if (length(line)) {
			if (!sub(/^,[[:space:]]*/, "", line)) {
				printf "%s:%d: no comma before: %s\n", FILENAME, NR, line
				bad = 1
				break
			}
		}
	}
}
END { exit bad }' "$R" || fail "$R does not parse"

# What it does, for the node the module registers.
node=$(sed -n '/struct miscdevice/,/};/s/^[[:space:]]*\.name = "\([^"]*\)".*/\1/p' "$S/kernel/main.c")
[ -n "$node" ] || fail "no miscdevice name in kernel/main.c"
rule=$(grep -E "KERNEL==\"$node\"" "$R" | grep -E 'SUBSYSTEM=="misc"' || true)
[ -n "$rule" ] || fail "no rule matches KERNEL==\"$node\", SUBSYSTEM==\"misc\""
group=$(printf '%s\n' "$rule" | sed -n 's/.*GROUP="\([^"]*\)".*/\1/p')
mode=$(printf '%s\n' "$rule" | sed -n 's/.*MODE="\([0-7]*\)".*/\1/p')
[ -n "$group" ] && [ "$group" != root ] || fail "the rule gives /dev/$node no group of its own"
case $mode in
0660|660) ;;
*) fail "MODE=\"$mode\": /dev/$node must be rw for its group and nothing for others" ;;
esac
echo "rule: /dev/$node group $group mode $mode"
for doc in "$S/README.md" "$S/man/libsva.7"; do
	sed 's/\\-/-/g; s/\\f[BIRP]//g' "$doc" | grep -q "groupadd --system $group" ||
		fail "${doc#"$S/"} does not say how to create group $group"
done
exit $bad
