// The rendered manifests' prometheus-operator objects (monitoring.coreos.com) checked against
// the operator's API types, as published in @kubernetes-models/prometheus-operator: required
// fields, types, enums and patterns (durations). Unknown fields are not caught by these
// schemas. The PrometheusRule must also equal the alert rules file it is generated from, and
// its spec is written out for `promtool check rules`.
//
// node check-crds.mjs RENDERED.yaml ALERTS.yml RULES_OUT.json
import { readFileSync, writeFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments, parse } from "yaml";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const [rendered, alertsFile, rulesOut] = process.argv.slice(2);
const GROUP = "monitoring.coreos.com/";
const problems = [];
const checked = [];
let rule = null;

for (const doc of parseAllDocuments(readFileSync(rendered, "utf8"))) {
  if (doc.errors.length > 0) {
    problems.push(`${rendered}: ${doc.errors.map((e) => e.message).join("; ")}`);
    continue;
  }
  const obj = doc.toJS();
  if (!obj || typeof obj.apiVersion !== "string" || !obj.apiVersion.startsWith(GROUP)) {
    continue;
  }
  const what = `${obj.kind}/${obj.metadata?.name}`;
  const Model = obj.apiVersion === `${GROUP}v1` ? v1[obj.kind] : undefined;
  if (typeof Model !== "function" || Model.kind !== obj.kind) {
    problems.push(`${what}: no schema for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
    checked.push(what);
  } catch (e) {
    problems.push(`${what}: ${e.message}`);
  }
  if (obj.kind === "PrometheusRule") {
    rule = obj;
  }
}

// The schemas must reject what the operator would: a rule whose `for` is no duration.
if (rule !== null) {
  const control = structuredClone(rule);
  control.spec.groups[0].rules[0].for = "5 minutes";
  let rejected = false;
  try {
    new v1.PrometheusRule(control).validate();
  } catch {
    rejected = true;
  }
  if (!rejected) {
    problems.push("the schemas accepted `for: 5 minutes` in a PrometheusRule: they check nothing");
  }
}

if (rule === null) {
  problems.push("no PrometheusRule in the rendered manifests");
} else {
  const alerts = parse(readFileSync(alertsFile, "utf8"));
  if (!isDeepStrictEqual(rule.spec, alerts)) {
    problems.push(
      `PrometheusRule/${rule.metadata?.name}: its spec differs from ${alertsFile} ` +
        "(run `cargo xtask manifests` to regenerate it)",
    );
  }
  writeFileSync(rulesOut, JSON.stringify(rule.spec, null, 1));
}

if (problems.length > 0) {
  for (const p of problems) {
    console.error(`prometheus-operator schema: ${p}`);
  }
  process.exit(1);
}
console.log(`valid against prometheus-operator's API types: ${checked.join(", ")}`);
