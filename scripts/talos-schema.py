#!/usr/bin/env python3
"""Writes runbooks/sim/talos/schema/v1_NN.lua from siderolabs/talos's own source.

Run by hand against a fetched (bare) talos git directory, never at build:

    scripts/talos-schema.py GIT_DIR v1.11.0 [OUT.lua]

It reads every non-test Go file under pkg/machinery/config/types/ at that tag
(v1alpha1 and the multi-document kinds: network, cri, runtime, block, ...) and
records, as data only:
  - each struct: its fields in declaration order, with the yaml name, omitempty,
    inline, flow, the talos:"omitonlyifnil" tag, merge:"replace", the Go type and
    its kind (scalar / struct NAME / list of X / map of X);
  - each other named type (type X []Y, type X string, ...);
  - which types have their own MarshalYAML, MarshalText or IsZero method;
  - the documents the registry knows: kind + apiVersion -> struct.
A few types from outside the talos tree (siderolabs/crypto x509, net/url)
appear in the config; they are listed in EXTERNAL below with their source.
"""

import re
import subprocess
import sys

TYPES_DIR = "pkg/machinery/config/types"

# Types defined outside pkg/machinery/config/types that the v1alpha1 config
# holds. Their yaml shape as the encoder writes it (with comments disabled).
EXTERNAL = {
    # github.com/siderolabs/crypto x509: MarshalYAML writes crt and key as
    # base64 strings, key without omitempty (a worker's machine.ca has key: "",
    # as talos's testdata/stability/*/base-worker.yaml shows).
    "x509.PEMEncodedCertificateAndKey": {
        "kind": "struct", "marshal": "yaml",
        "fields": [("Crt", "crt", False, "string"), ("Key", "key", False, "string")],
    },
    "x509.PEMEncodedKey": {
        "kind": "struct", "marshal": "yaml",
        "fields": [("Key", "key", False, "string")],
    },
    "x509.PEMEncodedCertificate": {
        "kind": "struct", "marshal": "yaml",
        "fields": [("Crt", "crt", False, "string")],
    },
}

STRUCT_RE = re.compile(r"^type\s+(\w+)\s+struct\s*{\s*$")
NAMED_RE = re.compile(r"^type\s+(\w+)\s+([^\s{=][^{]*?)\s*(//.*)?$")
FIELD_RE = re.compile(r"^\s*(\w+)\s+([^\s`]+)\s*(`[^`]*`)?\s*(//.*)?$")
EMBED_RE = re.compile(r"^\s*(\*?[\w.]+)\s*(`[^`]*`)?\s*(//.*)?$")
METHOD_RE = re.compile(r"^func\s+\(\s*\w+\s+\*?(\w+)\s*\)\s+(MarshalYAML|MarshalText|IsZero)\(")
KINDCONST_RE = re.compile(r"^\s*(?:const\s+)?(\w+)\s*=\s*\"(\w+)\"")
REGISTER_RE = re.compile(r"registry\.Register\(\s*(\w+)\s*,")
CASE_RE = re.compile(r"case\s+\"(v\w+)\"\s*:")
RETURN_RE = re.compile(r"return\s+&(\w+)\{")


def git(gitdir, *args):
    return subprocess.run(["git", "--git-dir=" + gitdir, *args], check=True,
                          capture_output=True, text=True).stdout


def tag_of(text, name):
    m = re.search(name + r':"([^"]*)"', text or "")
    return m.group(1) if m else None


def go_kind(t):
    """The kind of a Go type expression: (kind, element)."""
    t = t.lstrip("*")
    if t.startswith("[]"):
        return "list", t[2:].lstrip("*")
    if t.startswith("map["):
        depth, i = 0, 3
        for i in range(3, len(t)):
            if t[i] == "[":
                depth += 1
            elif t[i] == "]":
                depth -= 1
                if depth == 0:
                    break
        return "map", t[i + 1:].lstrip("*")
    return "type", t


def field_entry(name, gotype, tags):
    yt = tag_of(tags, "yaml")
    parts = yt.split(",") if yt is not None else [name.lower()]
    talos = (tag_of(tags, "talos") or "").split(",")
    yname = parts[0] if parts[0] else (None if "inline" in parts[1:] else name.lower())
    kind, elem = go_kind(gotype)
    return {
        "go": name, "yaml": yname, "type": gotype, "kind": kind, "elem": elem,
        "omitempty": "omitempty" in parts[1:], "inline": "inline" in parts[1:],
        "flow": "flow" in parts[1:], "omitonlyifnil": "omitonlyifnil" in talos,
        "replace": tag_of(tags, "merge") == "replace", "skip": parts[0] == "-",
    }


def parse_struct(lines, i, pkg):
    """Fields of the struct starting after line i; returns (fields, next i)."""
    fields, depth = [], 1
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if line.startswith("//") or not line:
            continue
        if line.startswith("}") and depth == 1:
            return fields, i
        if line.endswith("{"):
            depth += 1
            continue
        if line.startswith("}"):
            depth -= 1
            continue
        if depth > 1:
            continue
        m = FIELD_RE.match(line)
        if m and not m.group(1)[0].islower():
            fields.append(field_entry(m.group(1), m.group(2), m.group(3)))
            continue
        m = EMBED_RE.match(line)
        if m:
            t = m.group(1)
            base = t.lstrip("*").split(".")[-1]
            if base[0].isupper():
                e = field_entry(base, t, m.group(2))
                if e["yaml"] == base.lower() and not tag_of(m.group(2), "yaml"):
                    e["inline"], e["yaml"], e["embedded"] = True, None, True
                fields.append(e)
    return fields, i


def scan_file(text, pkg, out):
    lines = text.split("\n")
    consts = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        m = STRUCT_RE.match(line)
        if m:
            fields, i = parse_struct(lines, i + 1, pkg)
            out["types"][pkg + "." + m.group(1)] = {"kind": "struct", "fields": fields}
            continue
        m = NAMED_RE.match(line)
        if m and not m.group(2).startswith("("):
            kind, elem = go_kind(m.group(2).strip())
            out["types"][pkg + "." + m.group(1)] = {"kind": "named", "of": m.group(2).strip(),
                                                    "ofkind": kind, "elem": elem}
        m = METHOD_RE.match(line)
        if m:
            out["methods"].setdefault(pkg + "." + m.group(1), set()).add(m.group(2))
        m = KINDCONST_RE.match(line)
        if m:
            consts[m.group(1)] = m.group(2)
        i += 1
    for m in REGISTER_RE.finditer(text):
        kind = consts.get(m.group(1))
        body = text[m.end():m.end() + 800]
        for c in re.finditer(r"case\s+\"(v\w+)\"\s*:\s*(?://[^\n]*)?\s*return\s+&(\w+)\{", body):
            if kind:
                out["documents"][kind + "/" + c.group(1)] = pkg + "." + c.group(2)


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def resolve(t, pkg, types):
    """Qualifies a Go type name as the table key it has in types (or as is)."""
    t = t.lstrip("*")
    if "." in t:
        p, n = t.split(".", 1)
        return (p + "." + n) if (p + "." + n) in types or t in EXTERNAL else t
    return pkg + "." + t if pkg + "." + t in types else t


def emit_field(f, pkg, types):
    out = ["go = " + lua_str(f["go"])]
    if f["yaml"]:
        out.append("yaml = " + lua_str(f["yaml"]))
    out.append("type = " + lua_str(f["type"]))
    if f["kind"] in ("list", "map"):
        out.append("kind = " + lua_str(f["kind"]))
        out.append("elem = " + lua_str(resolve(f["elem"], pkg, types)))
    else:
        out.append("kind = " + lua_str(resolve(f["elem"], pkg, types)))
    for flag in ("omitempty", "inline", "flow", "omitonlyifnil", "replace", "skip"):
        if f[flag]:
            out.append(flag + " = true")
    return "{" + ", ".join(out) + "}"


def emit(out, tag, commit):
    types, w = out["types"], []
    w.append("-- Generated by scripts/talos-schema.py from siderolabs/talos " + tag + " (commit " + commit + "),")
    w.append("-- " + TYPES_DIR + "/**/*.go. Facts only; do not edit, regenerate.")
    w.append("-- types[NAME]: kind = \"struct\" (fields in declaration order) or \"named\" (of = its Go type);")
    w.append("-- a field's kind is the qualified type of its value, or \"list\"/\"map\" with elem;")
    w.append("-- marshal = the type's own MarshalYAML/MarshalText; iszero = it has IsZero.")
    w.append("return {")
    w.append("  tag = " + lua_str(tag) + ",")
    w.append("  commit = " + lua_str(commit) + ",")
    w.append("  documents = {")
    for k in sorted(out["documents"]):
        w.append("    [" + lua_str(k) + "] = " + lua_str(out["documents"][k]) + ",")
    w.append("  },")
    w.append("  types = {")
    for name in sorted(types):
        t = types[name]
        pkg = name.split(".")[0]
        meth = out["methods"].get(name, set())
        extra = ""
        if "MarshalYAML" in meth:
            extra += ", marshal = \"yaml\""
        elif "MarshalText" in meth:
            extra += ", marshal = \"text\""
        if "IsZero" in meth:
            extra += ", iszero = true"
        if t["kind"] == "struct":
            w.append("    [" + lua_str(name) + "] = {kind = \"struct\"" + extra + ", fields = {")
            for f in t["fields"]:
                w.append("      " + emit_field(f, pkg, types) + ",")
            w.append("    }},")
        else:
            of = t["of"]
            ofk = ", ofkind = " + lua_str(t["ofkind"])
            if t["ofkind"] in ("list", "map"):
                ofk += ", elem = " + lua_str(resolve(t["elem"], pkg, types))
            w.append("    [" + lua_str(name) + "] = {kind = \"named\", of = " + lua_str(of) + ofk + extra + "},")
    w.append("  },")
    w.append("}")
    return "\n".join(w) + "\n"


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: talos-schema.py GIT_DIR TAG [OUT.lua]")
    gitdir, tag = sys.argv[1], sys.argv[2]
    commit = git(gitdir, "rev-list", "-n1", tag).strip()
    files = [f for f in git(gitdir, "ls-tree", "-r", "--name-only", tag, TYPES_DIR).split("\n")
             if f.endswith(".go") and not f.endswith("_test.go") and not f.endswith("_doc.go")
             and "deep_copy" not in f and "zz_generated" not in f]
    out = {"types": {}, "methods": {}, "documents": {}}
    for f in files:
        pkg = f.split("/")[-2]
        scan_file(git(gitdir, "show", tag + ":" + f), pkg, out)
    for name, t in EXTERNAL.items():
        out["types"][name] = {"kind": "struct", "fields": [
            {"go": g, "yaml": y, "type": ty, "kind": "type", "elem": ty, "omitempty": o, "inline": False,
             "flow": False, "omitonlyifnil": False, "replace": False, "skip": False}
            for g, y, o, ty in t["fields"]]}
        out["methods"][name] = {"MarshalYAML"}
    out["documents"]["v1alpha1"] = "v1alpha1.Config"
    text = emit(out, tag, commit)
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
