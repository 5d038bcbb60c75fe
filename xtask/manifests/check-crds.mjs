// The rendered manifests' prometheus-operator objects (monitoring.coreos.com) checked against
// the operator's API types, as published in @kubernetes-models/prometheus-operator: required
// fields, types, enums and patterns (durations). Those schemas let an unknown field through,
// so each object's fields are watched while it is validated: a field the schema never read
// is one it does not know (a map's keys are all read). The PrometheusRule must also equal
// the alert rules file it is generated from, and its spec is written out for `promtool
// check rules`.
//
// node check-crds.mjs RENDERED.yaml ALERTS.yml RULES_OUT.json
import { readFileSync, writeFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments, parse } from "yaml";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const [rendered, alertsFile, rulesOut] = process.argv.slice(2);
const GROUP = "monitoring.coreos.com/";
const TOP_LEVEL = new Set(["apiVersion", "kind", "metadata", "spec", "status"]);

// `value` with every object in it wrapped to record which of its fields are read; each
// object's record goes to `records`.
function watched(value, path, records) {
  if (Array.isArray(value)) {
    return value.map((v, i) => watched(v, `${path}/${i}`, records));
  }
  if (value === null || typeof value !== "object") {
    return value;
  }
  const copy = {};
  for (const [key, v] of Object.entries(value)) {
    copy[key] = watched(v, `${path}/${key}`, records);
  }
  const record = { path, keys: Object.keys(copy), read: new Set() };
  records.push(record);
  return new Proxy(copy, {
    get(target, key, receiver) {
      if (typeof key === "string") {
        record.read.add(key);
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

// Validates `obj` as a `Model`; returns what is wrong with it.
function check(Model, obj) {
  const found = [];
  const model = new Model(obj);
  const records = [];
  for (const key of Object.keys(model)) {
    if (!TOP_LEVEL.has(key)) {
      found.push(`unknown field /${key}`);
    }
    model[key] = watched(model[key], `/${key}`, records);
  }
  try {
    model.validate();
  } catch (e) {
    found.push(e.message);
    return found;
  }
  const unknown = records.flatMap(({ path, keys, read }) =>
    keys.filter((k) => !read.has(k)).map((k) => `${path}/${k}`),
  );
  // Only the outermost: what is inside an unknown field is never read either.
  for (const path of unknown) {
    if (!unknown.some((outer) => path.startsWith(`${outer}/`))) {
      found.push(`unknown field ${path}`);
    }
  }
  return found;
}
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
  const found = check(Model, obj);
  if (found.length === 0) {
    checked.push(what);
  }
  problems.push(...found.map((f) => `${what}: ${f}`));
  if (obj.kind === "PrometheusRule") {
    rule = obj;
  }
}

// The checks must reject what the operator would: a rule whose `for` is no duration, a
// misspelt field.
if (rule !== null) {
  const badDuration = structuredClone(rule);
  badDuration.spec.groups[0].rules[0].for = "5 minutes";
  const misspelt = structuredClone(rule);
  misspelt.spec.groups[0].rules[0].lables = {};
  for (const [control, what] of [
    [badDuration, "`for: 5 minutes`"],
    [misspelt, "a rule's field `lables`"],
  ]) {
    if (check(v1.PrometheusRule, control).length === 0) {
      problems.push(`the checks accepted ${what} in a PrometheusRule: they check nothing`);
    }
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
