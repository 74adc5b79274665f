#!/usr/bin/python3
"""Packaging: the Kubernetes manifests in contrib/kubernetes/.

Every file parses as YAML (python3-yaml) and holds what doc/kubernetes.md
promises: the ClusterPersona CRD (dorgu.io/v1, cluster-scoped, status
subresource, the schema of the data model, which every example persona in
examples/personas/ fits), a ServiceAccount with get/list/watch on
clusterpersonas and nothing more, a Deployment (2 replicas, /healthz probes,
resources, read-only root, non-root, no privilege escalation, no
capabilities, seccomp RuntimeDefault, --source=kubernetes) and a Service that
reaches it.  With kubectl ($KUBECTL or on PATH), `kubectl create
--dry-run=client -o json` parses the directory into exactly the same objects,
and `kubectl apply --dry-run=client` takes it, against the fake API
(kube_fake.py) for discovery.  When this personad has the Kubernetes source
(--source in its --help), the Deployment's arguments pass --check-config.
Every file of the directory is installed (Makefile.am's dist_kubernetes_DATA).
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

TOP = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from harness import run  # noqa: E402
from kube_fake import FakeKube  # noqa: E402

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml missing (Debian: python3-yaml; contrib/quickstart installs it)")
    sys.exit(77)

DIR = os.path.join(TOP, "contrib", "kubernetes")


def documents():
    files = sorted(glob.glob(os.path.join(DIR, "*.yaml")))
    assert files, "no manifests in " + DIR
    docs = []
    for f in files:
        with open(f) as fh:
            docs += [d for d in yaml.safe_load_all(fh) if d is not None]
    return docs


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, "%d %s in %s" % (len(found), kind, DIR)
    return found[0]


def validate(value, schema, path="$"):
    """Check value against a structural OpenAPI v3 schema (the subset CRDs
    use: type, properties, required, items, enum, additionalProperties,
    x-kubernetes-preserve-unknown-fields).  Unknown fields are errors: a real
    API server would prune them."""
    t = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool,
             "integer": int, "number": (int, float)}
    assert t in types, "%s: schema without a type (not structural)" % path
    assert isinstance(value, types[t]) and not (t in ("integer", "number")
                                                and isinstance(value, bool)), \
        "%s: %r is not %s" % (path, value, t)
    if "enum" in schema:
        assert value in schema["enum"], "%s: %r not in %r" % (path, value, schema["enum"])
    if t == "array":
        for i, v in enumerate(value):
            validate(v, schema["items"], "%s[%d]" % (path, i))
    if t == "object":
        for k in schema.get("required", []):
            assert k in value, "%s: %s is required" % (path, k)
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if props is not None and k in props:
                validate(v, props[k], path + "." + k)
            elif isinstance(extra, dict):
                validate(v, extra, path + "." + k)
            elif props is not None or extra is not None:
                raise AssertionError("%s.%s: not in the schema (it would be pruned)" % (path, k))


def schema_nodes(schema, path="$"):
    yield path, schema
    for k, v in schema.get("properties", {}).items():
        yield from schema_nodes(v, path + "." + k)
    if "items" in schema:
        yield from schema_nodes(schema["items"], path + "[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from schema_nodes(schema["additionalProperties"], path + ".*")


def test_crd():
    crd = one(documents(), "CustomResourceDefinition")
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "clusterpersonas.dorgu.io"
    s = crd["spec"]
    assert s["group"] == "dorgu.io" and s["scope"] == "Cluster"
    assert s["names"] == {"kind": "ClusterPersona", "listKind": "ClusterPersonaList",
                          "plural": "clusterpersonas", "singular": "clusterpersona"}
    (v,) = s["versions"]
    assert v["name"] == "v1" and v["served"] is True and v["storage"] is True
    assert v["subresources"] == {"status": {}}
    cols = {c["name"]: c["jsonPath"] for c in v["additionalPrinterColumns"]}
    assert cols == {"Environment": ".spec.environment", "Phase": ".status.phase",
                    "Nodes": ".status.resourceSummary.nodeCount",
                    "Apps": ".status.applicationCount",
                    "Age": ".metadata.creationTimestamp"}, cols
    root = v["schema"]["openAPIV3Schema"]
    for path, node in schema_nodes(root):
        assert "type" in node, "%s: no type (a CRD schema must be structural)" % path
    spec, status = root["properties"]["spec"], root["properties"]["status"]
    assert root["required"] == ["spec"] and spec["required"] == ["name"]
    assert spec["properties"]["environment"]["enum"] == ["development", "staging",
                                                         "production", "sandbox"]
    assert spec["properties"]["environment"]["default"] == "development"
    for k in ("policies", "conventions", "defaults", "resourceQuotas"):
        assert spec["properties"][k]["type"] == "object"
    assert status["properties"]["phase"]["enum"] == ["Discovering", "Ready", "Degraded",
                                                      "Unknown"]
    for k in ("lastDiscovery", "nodes", "resourceSummary", "addons", "namespaces",
              "kubernetesVersion", "platform", "applicationCount", "conditions"):
        assert k in status["properties"], "status." + k
    node = status["properties"]["nodes"]["items"]["properties"]
    assert node["role"]["enum"] == ["control-plane", "worker"]
    for q in ("capacity", "allocatable"):
        assert set(node[q]["properties"]) == {"cpu", "memory", "pods", "ephemeralStorage"}
        assert all(p["type"] == "string" for p in node[q]["properties"].values())
    # every example persona is a valid ClusterPersona (nothing would be pruned)
    examples = sorted(glob.glob(os.path.join(TOP, "examples", "personas", "*.json")))
    assert examples
    for f in examples:
        with open(f) as fh:
            p = json.load(fh)
        name = p.get("name") or p["metadata"]["name"]
        obj = {"apiVersion": "dorgu.io/v1", "kind": "ClusterPersona",
               "metadata": {"name": name}, "spec": p["spec"]}
        if "status" in p:
            obj["status"] = p["status"]
        validate(obj, root, os.path.basename(f))
    # and the validator does refuse what the schema forbids
    for bad in ({"spec": {}}, {"spec": {"name": "x", "environment": "prod"}},
                {"spec": {"name": "x"}, "status": {"phase": "Running"}},
                {"spec": {"name": "x"}, "status": {"nodes": [{"cpu": 4}]}},
                {"spec": {"name": "x"}, "status": {"applicationCount": "3"}}):
        try:
            validate(dict(bad, apiVersion="dorgu.io/v1", kind="ClusterPersona",
                          metadata={}), root)
        except AssertionError:
            continue
        raise AssertionError("the schema accepts %r" % bad)


def test_rbac():
    docs = documents()
    sa, role, binding = (one(docs, "ServiceAccount"), one(docs, "ClusterRole"),
                         one(docs, "ClusterRoleBinding"))
    assert role["apiVersion"] == binding["apiVersion"] == "rbac.authorization.k8s.io/v1"
    rules = role["rules"]
    assert len(rules) == 1, rules
    assert rules[0]["apiGroups"] == ["dorgu.io"] and rules[0]["resources"] == ["clusterpersonas"]
    assert sorted(rules[0]["verbs"]) == ["get", "list", "watch"], rules
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    ns = one(docs, "Namespace")
    assert sa["metadata"]["namespace"] == ns["metadata"]["name"]


def deployment_container(docs):
    dep = one(docs, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, c


def test_deployment():
    docs = documents()
    dep, c = deployment_container(docs)
    sa = one(docs, "ServiceAccount")
    assert dep["apiVersion"] == "apps/v1"
    assert dep["metadata"]["namespace"] == sa["metadata"]["namespace"]
    spec = dep["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod.get("automountServiceAccountToken", True) is True
    assert "--source=kubernetes" in c["args"], c["args"]
    assert c["image"], "no image"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    listen = [a for a in c["args"] if a.startswith("--listen=")]
    assert listen and listen[0].rsplit(":", 1)[-1].split("=")[-1] == str(ports["http"])
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        g = c[probe]["httpGet"]
        assert g["path"] == "/healthz" and g["port"] in ports, (probe, g)
    res = c["resources"]
    assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], res
    psc, sc = pod.get("securityContext", {}), c["securityContext"]
    merged = dict(psc, **sc)
    assert merged["runAsNonRoot"] is True
    assert merged.get("runAsUser", 0) != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert merged["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not sc.get("privileged") and not pod.get("hostNetwork") and not pod.get("hostPID")
    # a writable, memory-backed /dev/shm for the ring and the snapshot
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    assert vols[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_service():
    docs = documents()
    dep, c = deployment_container(docs)
    svc = one(docs, "Service")
    assert svc["metadata"]["namespace"] == dep["metadata"]["namespace"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    names = {p["name"] for p in c["ports"]}
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in names or p["targetPort"] in [q["containerPort"]
                                                               for q in c["ports"]], p


def test_daemon_takes_the_args():
    personad = os.environ.get("PERSONAD") or os.path.join(
        os.environ.get("TOP_BUILDDIR", "."), "src", "personad")
    if not os.access(personad, os.X_OK):
        print("note: no personad binary, its arguments not checked")
        return
    h = subprocess.run([personad, "--help"], capture_output=True, text=True, timeout=10)
    if "--source" not in h.stdout + h.stderr:
        print("note: this personad has no --source (no Kubernetes source): args not checked")
        return
    _, c = deployment_container(documents())
    p = subprocess.run([personad] + c["args"] + ["--check-config"], capture_output=True,
                       text=True, timeout=10, env=dict(os.environ, KUBERNETES_SERVICE_HOST="10.0.0.1",
                                                       KUBERNETES_SERVICE_PORT="443"))
    assert p.returncode == 0, (c["args"], p.stdout, p.stderr)


def vals(s):
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(s) and s[i].isspace():
            i += 1
        if i >= len(s):
            return out
        v, i = dec.raw_decode(s, i)
        out.append(v)


def test_every_file_is_installed():
    with open(os.path.join(TOP, "Makefile.am")) as f:
        mk = f.read().replace("\\\n", " ")
    line = [ln for ln in mk.splitlines() if ln.startswith("dist_kubernetes_DATA")]
    assert len(line) == 1, "no dist_kubernetes_DATA in Makefile.am"
    listed = set(line[0].split("=", 1)[1].split())
    present = {"contrib/kubernetes/" + n for n in os.listdir(DIR)}
    assert listed == present, "Makefile.am lists %s, the directory has %s" % (
        sorted(listed), sorted(present))


def test_kubectl_reads_them():
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        print("note: no kubectl, not checked with it")
        return
    home = tempfile.mkdtemp(prefix="personad-kubectl-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(HOME=home, KUBECONFIG=os.path.join(home, "none"))
    try:
        with FakeKube() as kube:
            base = [kubectl, "--server=" + kube.url, "--cache-dir=" + os.path.join(home, "c"),
                    "--request-timeout=20s"]
            p = subprocess.run(base + ["create", "--dry-run=client", "--validate=false",
                                       "-f", DIR, "-o", "json"],
                               capture_output=True, text=True, timeout=60, env=env)
            assert p.returncode == 0, p.stderr
            assert vals(p.stdout) == documents(), "kubectl reads other objects"
            p = subprocess.run(base + ["apply", "--dry-run=client", "--validate=false",
                                       "-f", DIR, "-o", "name"],
                               capture_output=True, text=True, timeout=60, env=env)
            assert p.returncode == 0, p.stderr
            assert len(p.stdout.split()) == len(documents()), p.stdout
            assert "deployment.apps/personad" in p.stdout.split(), p.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    run([test_crd, test_rbac, test_deployment, test_service, test_daemon_takes_the_args,
         test_every_file_is_installed, test_kubectl_reads_them])
