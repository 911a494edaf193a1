#!/usr/bin/env bash
# deploy/ validated offline: every manifest parses as Kubernetes objects
# with the real kubectl (`kubectl label --local -o yaml`, which reads the
# files with kubectl's own decoder and needs no API server; `kubectl apply
# --dry-run=client` asks the server for its API groups even so), then a
# check of what the manifests promise (docs/deploy.md): a Job that is not
# retried blindly, a CronJob that never overlaps, secrets as read-only
# files and never in the environment, not on a target cluster; and an
# image recipe from Debian packages only.
# usage: test_deploy.sh RUNBOOK_BIN SOURCE_DIR
set -u
src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }
command -v kubectl >/dev/null || { echo "FAIL kubectl is not installed (scripts/install-deps.sh installs kubernetes-client)"; exit 1; }

for f in "$src"/deploy/*.yaml; do
  n=$(basename "$f")
  if KUBECONFIG=/nonexistent timeout 30 kubectl label --local -f "$f" runbook.dev/validated=offline -o json >"$tmp/$n" 2>"$tmp/$n.err"; then
    ok "kubectl reads $n offline"
  else fail "kubectl refuses $n: $(cat "$tmp/$n.err")"; fi
done

python3 - "$tmp" <<'PY' && ok "the manifests keep their promises" || fail "a manifest breaks a promise (above)"
import glob, json, os, sys
objs = []
dec = json.JSONDecoder()
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.yaml"))):
    text, pos = open(f).read(), 0     # kubectl prints one JSON object per object, back to back
    while pos < len(text.rstrip()):
        while text[pos].isspace(): pos += 1
        d, pos = dec.raw_decode(text, pos)
        objs.extend(d["items"] if d.get("kind") == "List" else [d])
kinds = {o["kind"]: o for o in objs}
roles = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Role"}
bad = []
def need(cond, msg):
    if not cond: bad.append(msg)
for k in ("Job", "CronJob", "ServiceAccount", "Role", "RoleBinding", "Secret"):
    need(k in kinds, "no " + k)
job = kinds["Job"]["spec"]; cron = kinds["CronJob"]["spec"]
need(job["backoffLimit"] == 0, "Job backoffLimit is not 0")
need(job["podReplacementPolicy"] == "Failed", "Job podReplacementPolicy is not Failed")
need(job.get("activeDeadlineSeconds", 0) > 0, "Job without activeDeadlineSeconds")
need(cron["concurrencyPolicy"] == "Forbid", "CronJob concurrencyPolicy is not Forbid")
need(cron["jobTemplate"]["spec"]["backoffLimit"] == 0, "CronJob's jobs are retried")
for name, pod in (("Job", job["template"]["spec"]), ("CronJob", cron["jobTemplate"]["spec"]["template"]["spec"])):
    need(pod["restartPolicy"] == "Never", name + ": restartPolicy is not Never")
    need(pod.get("nodeSelector", {}).get("runbook.dev/management") == "true", name + ": may be scheduled off the management cluster")
    need(pod.get("serviceAccountName") == "runbook", name + ": not the runbook ServiceAccount")
    vols = {v["name"]: v for v in pod["volumes"]}
    for c in pod.get("initContainers", []) + pod["containers"]:
        for e in c.get("env", []):
            need("valueFrom" not in e, "%s: %s takes %s from a Secret or ConfigMap into the environment" % (name, c["name"], e["name"]))
            need(not any(w in e["name"].upper() for w in ("KEY", "TOKEN", "PASSWORD")), "%s: a secret-looking variable %s in env" % (name, e["name"]))
        need(not any("tskey" in a for a in c.get("args", []) + c.get("command", [])), name + ": a key in argv")
        for m in c.get("volumeMounts", []):
            if "secret" in vols[m["name"]]:
                need(m.get("readOnly") is True, "%s: secret volume %s mounted writable" % (name, m["name"]))
                need(vols[m["name"]]["secret"].get("defaultMode") == 0o400, "%s: secret %s not 0400" % (name, m["name"]))
def role_verbs(name):
    need(name in roles, "no Role " + name)
    rules = roles.get(name, {}).get("rules", [])
    return {(r["apiGroups"][0], res): set(r["verbs"]) for r in rules for res in r["resources"]}
verbs = role_verbs("runbook-store")
need(verbs.get(("coordination.k8s.io", "leases")) == {"get", "create", "update", "delete", "watch"}, "Role: leases verbs")
need(verbs.get(("", "configmaps")) == {"get", "create", "update"}, "Role: configmaps verbs")
need(not any("*" in v for v in verbs.values()), "Role: a wildcard verb")
# runbook status (store_k8s.lua Store:list) lists both kinds, and only reads
view = role_verbs("runbook-store-viewer")
need(view.get(("coordination.k8s.io", "leases")) == {"get", "list"}, "viewer Role: leases verbs")
need(view.get(("", "configmaps")) == {"get", "list"}, "viewer Role: configmaps verbs")
bound = {b["roleRef"]["name"] for b in objs if b["kind"] == "RoleBinding"}
need(bound == {"runbook-store"}, "RoleBindings bind %s, not only the Job's Role" % sorted(bound))
for b in bad: print("  " + b)
sys.exit(1 if bad else 0)
PY

cf=$src/deploy/Containerfile
froms=$(grep -E '^FROM ' "$cf" | awk '{print $2}' | sort -u | tr '\n' ' ')
[ "$froms" = "debian:12-slim " ] && ok "the image is built on Debian 12 only ($froms)" || fail "FROM lines: $froms"
! grep -qiE '(curl|wget) |^ADD +https?:|pip install|npm install|go install' "$cf" && ok "the image takes nothing but Debian packages and this tree" || fail "the Containerfile fetches from elsewhere"
grep -q '^USER 65532' "$cf" && ok "the image runs as a non-root user" || fail "no USER"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
