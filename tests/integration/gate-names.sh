#!/usr/bin/env bash
# Hostile tap names are refused before nft sees them: gatectl fails, its debug log shows no nft
# command at all, and the namespace's ruleset stays empty. Hostile domain names only ever reach
# nft as the derived table name.
source "$(dirname "$0")/gate-lib.sh"
topo_routed 1

hostile=(
    ""
    "."
    ".."
    "abcdefghijklmnop"
    "hv x"
    "hv;"
    'hv"'
    "hv'"
    $'hv\nflush ruleset'
    "hv}"
    "{hv"
    "hv/0"
    'hv$(id)'
    "t$(printf '\xc3\xa4')p"
    "hv:1"
)
for name in "${hostile[@]}"; do
    # The valid hv first, so the refusal is about the second name only.
    if NETCKPT_LOG=debug hx "$GATECTL" install dom-h hv "$name" >"$TMP/out" 2>&1; then
        fail "accepted tap name $(printf %q "$name")"
    fi
    grep -q "refusing tap name" "$TMP/out" || fail "no clear refusal for $(printf %q "$name")"
    if grep -q "gate: nft" "$TMP/out"; then
        fail "nft saw a command for $(printf %q "$name")"
    fi
done
[[ -z $(hx nft list ruleset) ]] || fail "ruleset not empty after refusals"
ok "${#hostile[@]} hostile tap names refused before nft"

# A well-formed name of a device that does not exist: refused too (nft would accept it).
if NETCKPT_LOG=debug hx "$GATECTL" install dom-h nosuchtap0 >"$TMP/out" 2>&1; then
    fail "gated a missing device"
fi
grep -q "does not exist" "$TMP/out" || fail "missing device not named"
grep -q "gate: nft" "$TMP/out" && fail "nft saw a command for a missing device"
ok "missing device refused"

# Hostile domain names map to safe table names and work end to end.
domains=('x; flush ruleset' $'dom\n}' '"quoted"' "$(printf '\xf0\x9f\x92\xa3')" '../../etc')
for d in "${domains[@]}"; do
    t=$(gatectl table-name "$d")
    [[ $t =~ ^nc_[A-Za-z0-9_]+$ ]] || fail "unsafe table name $t"
    gatectl install "$d" hv
    grep -qx "table netdev $t" <<<"$(hx nft list tables netdev)" || fail "table $t not found"
    [[ $(gatectl lift "$d") == lifted ]] || fail "lift of $(printf %q "$d")"
done
[[ -z $(hx nft list ruleset) ]] || fail "ruleset not empty after hostile domains"
ok "hostile domain names mapped to safe tables"
echo PASS
