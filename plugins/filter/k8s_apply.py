"""Pruning by record (filters `applied_objects`, `applied_pruned`, `applied_stale`), for the
k8s_apply role, and what --diff shows of an apply (`applied_diffs`, never a Secret's data);
`stored_versions`, to tell from the cluster whether a run wrote anything; an Istio found in
the cluster: `istio_not_ours` (what istio_mesh must not touch), `istio_found` (an Istio somebody
else installed, as the roles use it).

Every call of the role applies, after its objects, one ConfigMap per object set that records
what the set holds. The role's apply runs in diff mode, so the ConfigMap's `before` is the
previous record: what it listed and the new objects do not is deleted. A no-op run thus
needs no lookups at all, and objects this project never created are never touched.
"""

import json

# What marks an object as this project's: every object the k8s_apply role applies carries these
# (the one definition: roles, Molecule and tests use ours / ours_labels).
PART_OF = "app.kubernetes.io/part-of"
OURS = {PART_OF: "mesh-playground", "app.kubernetes.io/managed-by": "ansible"}
RECORD_PREFIX = "mesh-playground-applied-"


def _key(obj):
    meta = obj["metadata"]
    return " ".join((obj["apiVersion"], obj["kind"], meta.get("namespace") or "-", meta["name"]))


def ours(obj):
    """Whether an object read from the cluster was created by this project (its part-of label;
    an empty or missing object is not ours)."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(PART_OF) == OURS[PART_OF]


def not_ours(objects):
    """The objects (read from the cluster) that this project did not create."""
    return [obj for obj in objects if not ours(obj)]


def ours_labels(labels=None):
    """`labels` (e.g. a selector) and ours: what every applied object carries, for label
    selectors and for checking what was applied."""
    return dict(labels or {}, **OURS)


def applied_record(objects):
    """The record of `objects`: one sorted line `apiVersion kind namespace name` each."""
    return "".join(f"{key}\n" for key in sorted({_key(obj) for obj in objects}))


def applied_stale(before_record, objects):
    """Objects listed in `before_record` and absent from `objects`, as minimal definitions."""
    current = {_key(obj) for obj in objects}
    stale = []
    for line in (before_record or "").splitlines():
        if not line.strip() or line in current:
            continue
        api_version, kind, namespace, name = line.split(" ")
        metadata = {"name": name}
        if namespace != "-":
            metadata["namespace"] = namespace
        stale.append({"apiVersion": api_version, "kind": kind, "metadata": metadata})
    # Delete what was applied last first (policies before the workloads they route to).
    return stale[::-1]


def applied_objects(sets, namespace):
    """What the role applies: every set's objects, labelled as ours, each set followed by its
    record (a ConfigMap in `namespace`), in order."""
    result = []
    for set_name, objects in sets.items():
        for obj in objects:
            obj = dict(obj, metadata=dict(obj["metadata"]))
            obj["metadata"]["labels"] = ours_labels(obj["metadata"].get("labels"))
            result.append(obj)
        result.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": RECORD_PREFIX + set_name,
                    "namespace": namespace,
                    "labels": ours_labels({"mesh-playground/record": set_name}),
                },
                "data": {"record": applied_record(objects)},
            }
        )
    return result


def applied_pruned(results, sets):
    """From the results of applying applied_objects(sets, ...) in diff mode, the objects each
    set's previous record listed that the set no longer holds."""
    stale = []
    records = {RECORD_PREFIX + name: objects for name, objects in sets.items()}
    for result in results:
        obj = result.get("result") or {}
        name = (obj.get("metadata") or {}).get("name")
        if obj.get("kind") != "ConfigMap" or name not in records:
            continue
        before = ((result.get("diff") or {}).get("before") or {}).get("data") or {}
        stale += applied_stale(before.get("record"), records[name])
    return stale


def applied_diffs(results):
    """What --diff shows of an apply in diff mode: `Kind/name` and the diff of each changed
    object; a Secret's diff (its data) is never shown."""
    diffs = []
    for result in results:
        obj = result.get("result") or {}
        if not result.get("changed") or "kind" not in obj:
            continue
        if obj["kind"] == "Secret":
            diff = "(a Secret: its data is not shown)"
        else:
            diff = result.get("diff") or "(no diff)"
        diffs.append({"object": f"{obj['kind']}/{obj['metadata']['name']}", "diff": diff})
    return diffs


def stored_versions(objects):
    """What changes when each object is written, by `Kind/namespace/name`: its resourceVersion,
    or for a Deployment its generation (the controllers rewrite a Deployment's status while
    its pods come and go; any change of its spec moves the generation). Two of these, read
    before and after a run, are equal when the run applied, relabelled, created or deleted
    nothing there."""
    versions = {}
    for obj in objects:
        meta = obj["metadata"]
        key = f"{obj['kind']}/{meta.get('namespace') or '-'}/{meta['name']}"
        if obj["kind"] == "Deployment":
            versions[key] = f"generation {meta.get('generation', 0)}"
        else:
            versions[key] = meta["resourceVersion"]
    return versions


def _installer(obj):
    """Who installed an object, from the labels the common installers put on what they make."""
    labels = obj["metadata"].get("labels") or {}
    annotations = obj["metadata"].get("annotations") or {}
    # Istio's charts carry the operator's labels and Helm's managed-by whoever renders them
    # (istioctl renders them through Helm's engine): only `helm install` writes its release.
    if "meta.helm.sh/release-name" in annotations:
        return "Helm"
    if any(key.startswith(("operator.istio.io/", "install.operator.istio.io/")) for key in labels):
        return "istioctl"
    return labels.get("app.kubernetes.io/managed-by") or "unknown"


def istio_not_ours(namespaces, releases, deployments, crds, namespace):
    """What of an Istio found in the cluster this project did not install, one sentence each
    (empty: nothing): each of `namespaces` (Namespace objects, those that exist) not labelled
    ours, with the Helm releases (release Secrets) and Deployments it holds; and Istio's `crds`
    held by a Helm release of another namespace than `namespace` (CRDs without Helm's
    annotations were applied by hand and may be adopted)."""
    problems = []
    for found in namespaces:
        if ours(found):
            continue
        name = found["metadata"]["name"]
        held = sorted(
            {
                s["metadata"]["labels"].get("name", "?")
                for s in releases
                if s["metadata"]["namespace"] == name
            }
        )
        workloads = sorted(
            f"{d['metadata']['name']} (by {_installer(d)})"
            for d in deployments
            if d["metadata"]["namespace"] == name
        )
        holds = "; ".join(
            part
            for part in (
                f"Helm releases {', '.join(held)}" if held else "",
                f"Deployments {', '.join(workloads)}" if workloads else "",
            )
            if part
        )
        problems.append(
            f"namespace {name} exists and mesh-playground did not create it (no label "
            f"{PART_OF}={OURS[PART_OF]}), holding {holds or 'no Helm release or Deployment'}"
        )
    owners = {}
    for crd in crds:
        annotations = crd["metadata"].get("annotations") or {}
        owner_namespace = annotations.get("meta.helm.sh/release-namespace")
        if owner_namespace and owner_namespace != namespace:
            owner = (annotations.get("meta.helm.sh/release-name", "?"), owner_namespace)
            owners.setdefault(owner, []).append(crd["metadata"]["name"])
    for (release, owner_namespace), names in sorted(owners.items()):
        problems.append(
            f"{len(names)} of Istio's CRDs ({', '.join(sorted(names)[:3])}"
            f"{', ...' if len(names) > 3 else ''}) belong to Helm release {release} of "
            f"namespace {owner_namespace}"
        )
    return problems


def _revision(labels):
    return (labels or {}).get("istio.io/rev") or "default"


def _template_labels(deployment):
    return ((deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
        "labels"
    ) or {}


def istio_found(istiods, injectors, cni_daemonsets, deployments, revision=""):
    """The Istio somebody else installed, as the roles use it (playground_istio: existing).

    `istiods`: the cluster's Deployments labelled app=istiod; `injectors`: ConfigMaps labelled
    istio.io/rev (istiod's injection settings, istio-sidecar-injector[-<rev>]); `cni_daemonsets`:
    DaemonSets labelled k8s-app=istio-cni-node; `deployments`: Deployments with an `istio` label
    (gateways among them); `revision`: the one to use, '' = the only one there is. Returns
    `problems` (what stops the run, one sentence each) and, when there are none: `namespace` and
    `revision` of istiod, `installer`, `cni` (its sidecars need no istio-init), `pod_security`
    (what the apps' namespace can enforce with it), `injection_labels` (what makes that istiod
    inject a namespace), `gateways` (the ingress gateways, its revision's first: namespace,
    name, selector, pod labels, revision), `gateway_selector` (the only one of its revision, else
    the only one there is, else None) and a one-line `summary`."""
    found = {"problems": [], "gateways": [], "gateway_selector": None}
    every = sorted(
        f"{_revision(d['metadata'].get('labels'))} (istiod in {d['metadata']['namespace']})"
        for d in istiods
    )
    chosen = [
        d for d in istiods if not revision or _revision(d["metadata"].get("labels")) == revision
    ]
    if not istiods:
        found["problems"].append(
            "playground_istio is existing, but no istiod runs in this cluster (no Deployment "
            "labelled app=istiod): install Istio first, or set playground_istio: install "
            "(playbooks/istio.yml installs one)."
        )
    elif not chosen:
        found["problems"].append(
            f"No istiod of revision {revision} (playground_istio_revision) in this cluster; "
            f"it has: {', '.join(every)}."
        )
    elif len({_revision(d["metadata"].get("labels")) for d in chosen}) > 1:
        found["problems"].append(
            f"{len(chosen)} istiod revisions run in this cluster: {', '.join(every)}; set "
            "playground_istio_revision to the one whose sidecars the apps should get."
        )
    elif len(chosen) > 1:
        found["problems"].append(
            f"{len(chosen)} istiods serve revision {_revision(chosen[0]['metadata'].get('labels'))}"
            f" ({', '.join(every)}): mesh-playground uses the one control plane of a revision;"
            " several (multi-primary, a second mesh) are not supported."
        )
    if found["problems"]:
        return found
    istiod = chosen[0]
    namespace, rev = istiod["metadata"]["namespace"], _revision(istiod["metadata"].get("labels"))
    injector_name = "istio-sidecar-injector" + ("" if rev == "default" else f"-{rev}")
    injector = next(
        (
            c
            for c in injectors
            if c["metadata"]["name"] == injector_name and c["metadata"]["namespace"] == namespace
        ),
        None,
    )
    if injector is None:
        found["problems"].append(
            f"istiod of revision {rev} in {namespace} has no ConfigMap {injector_name}: "
            "how it injects sidecars (with or without the Istio CNI) cannot be told."
        )
        return found
    try:
        values = json.loads((injector.get("data") or {}).get("values") or "{}")
    except ValueError:
        values = None
    if not isinstance(values, dict):
        found["problems"].append(
            f"ConfigMap {injector_name} in {namespace} holds no readable `values` (JSON): how "
            "istiod injects sidecars (with or without the Istio CNI) cannot be told."
        )
        return found
    cni = bool(
        ((values.get("pilot") or {}).get("cni") or {}).get("enabled")
        or (values.get("istio_cni") or {}).get("enabled")
    )
    if cni and not cni_daemonsets:
        found["problems"].append(
            f"istiod of revision {rev} in {namespace} injects sidecars for the Istio CNI, but no "
            "istio-cni-node DaemonSet runs (label k8s-app=istio-cni-node): its pods would fail "
            "their istio-validation container. Install Istio's CNI, or fix istiod's "
            "pilot.cni.enabled."
        )
        return found
    for deployment in deployments:
        labels = _template_labels(deployment)
        role = labels.get("istio", "")
        if not role or labels.get("app") == "istiod" or role == "pilot":
            continue
        if "egress" in role or "eastwest" in role:  # not an entry for the apps
            continue
        found["gateways"].append(
            {
                "namespace": deployment["metadata"]["namespace"],
                "name": deployment["metadata"]["name"],
                "selector": {"istio": role},
                "labels": labels,
                "revision": _revision(labels),
            }
        )
    found["gateways"].sort(key=lambda g: (g["revision"] != rev, g["namespace"], g["name"]))
    # The one gateway of this revision; else (injected through its namespace's label, which
    # is not read here) the only gateway there is; else the inventory names it.
    own = [g for g in found["gateways"] if g["revision"] == rev]
    single = own if own else found["gateways"]
    if len(single) == 1:
        found["gateway_selector"] = single[0]["selector"]
    installer = _installer(istiod)
    gateways = ", ".join(
        f"istio={g['selector']['istio']} in {g['namespace']}"
        + ("" if g["revision"] == rev else f" (revision {g['revision']})")
        for g in found["gateways"]
    )
    found.update(
        namespace=namespace,
        revision=rev,
        installer=installer,
        cni=cni,
        pod_security="restricted" if cni else "privileged",
        injection_labels=(
            {"istio-injection": "enabled"} if rev == "default" else {"istio.io/rev": rev}
        ),
        summary=(
            f"istiod of revision {rev} in {namespace} (by {installer}), "
            f"{'with' if cni else 'without'} the Istio CNI; ingress gateways: {gateways or 'none'}"
        ),
    )
    return found


# The ingress gateway istio_mesh installs (its Deployment and Service carry the release's name).
LOCAL_GATEWAY = {"name": "istio-ingressgateway", "namespace": "istio-ingress"}


def gateway_service(found, selector):
    """The in-cluster host name of the ingress gateway's Service: of the gateway in `found`
    (istio_found's, playground_istio existing) whose labels `selector` picks, else of the one
    istio_mesh installs. A gateway's Service is named as its Deployment (Helm's gateway chart,
    istioctl)."""
    gateway = next(
        (g for g in (found or {}).get("gateways", []) if g["selector"] == dict(selector or {})),
        LOCAL_GATEWAY,
    )
    return f"{gateway['name']}.{gateway['namespace']}.svc.cluster.local"


class FilterModule:
    def filters(self):
        return {
            "applied_diffs": applied_diffs,
            "applied_objects": applied_objects,
            "applied_pruned": applied_pruned,
            "applied_stale": applied_stale,
            "gateway_service": gateway_service,
            "istio_not_ours": istio_not_ours,
            "istio_found": istio_found,
            "not_ours": not_ours,
            "ours": ours,
            "ours_labels": ours_labels,
            "stored_versions": stored_versions,
        }
