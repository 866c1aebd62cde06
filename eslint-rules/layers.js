// ESLint rules that keep the architecture's shape (docs/architecture.md, the layer order at its top):
//   smccc ← policy, trace ← router ← services / mediators / firmware ← hypervisor ← machine ← fuzz, record ← cli
// `layer-direction`: a module may import its own layer or layers to its left, never to its right, and
// never a sibling layer of the same rank (the secure-world model is reached only through SMCs).
// `pure-core`: below machine/, no Node built-ins and no ambient time or randomness: they come in as ports.
import path from "node:path";

export const LAYER_RANK = {
  smccc: 0,
  policy: 1,
  trace: 1,
  router: 2,
  services: 3,
  mediators: 3,
  firmware: 3,
  hypervisor: 4,
  machine: 5,
  // The fuzzing campaign drives the scripted machine; only the command line uses it.
  fuzz: 5.5,
  // Record and replay drive the hypervisor with the machine layer's boards; only the command line uses them.
  record: 5.5,
  // The dashboard and control API watch and steer a machine; only the command line starts them.
  ui: 5.5,
  cli: 6,
};

function layerOf(file) {
  const parts = path.normalize(file).split(path.sep);
  const i = parts.lastIndexOf("src");
  if (i < 0 || i + 1 >= parts.length - 1) return null;
  const layer = parts[i + 1];
  return layer in LAYER_RANK ? layer : null;
}

function importSources(node) {
  if (node.type === "ImportDeclaration" || node.type === "ExportAllDeclaration" || node.type === "ExportNamedDeclaration") {
    return node.source ? [node.source] : [];
  }
  if (node.type === "ImportExpression" && node.source.type === "Literal") return [node.source];
  return [];
}

const layerDirection = {
  meta: {
    type: "problem",
    docs: { description: "imports follow the layer order of docs/architecture.md" },
    schema: [],
    messages: {
      upward: "{{from}}/ may not import {{to}}/: {{to}} is a higher layer (smccc ← policy, trace ← router ← services/mediators/firmware ← hypervisor ← machine ← cli)",
      sibling: "{{from}}/ may not import {{to}}/: sibling layers talk through ports and SMCs, not imports",
    },
  },
  create(context) {
    const file = context.filename;
    const from = layerOf(file);
    // Tests sit beside the code they test but drive it through the fluent machine API from above.
    if (!from || /\.test\.ts$/.test(file)) return {};
    const check = (node) => {
      for (const src of importSources(node)) {
        const spec = String(src.value);
        if (!spec.startsWith(".")) continue;
        const to = layerOf(path.resolve(path.dirname(file), spec));
        if (!to || to === from) continue;
        if (LAYER_RANK[to] > LAYER_RANK[from]) context.report({ node: src, messageId: "upward", data: { from, to } });
        else if (LAYER_RANK[to] === LAYER_RANK[from]) context.report({ node: src, messageId: "sibling", data: { from, to } });
      }
    };
    return { ImportDeclaration: check, ExportAllDeclaration: check, ExportNamedDeclaration: check, ImportExpression: check };
  },
};

const PURE_LIMIT = LAYER_RANK.machine;
const NODE_BUILTINS = new Set(["fs", "path", "os", "child_process", "net", "crypto", "worker_threads", "process", "timers", "util", "events", "stream", "url", "http", "https", "dgram", "readline", "perf_hooks", "v8", "vm", "zlib", "buffer", "module", "cluster", "tty", "dns"]);

const pureCore = {
  meta: {
    type: "problem",
    docs: { description: "the core below machine/ is free of I/O, ambient time and randomness" },
    schema: [],
    messages: {
      builtin: "{{layer}}/ is part of the pure core: no Node built-in '{{name}}' (take it as a port)",
      ambient: "{{layer}}/ is part of the pure core: no {{name}} (time and entropy come in through ports)",
    },
  },
  create(context) {
    const layer = layerOf(context.filename);
    if (!layer || LAYER_RANK[layer] >= PURE_LIMIT || /\.test\.ts$/.test(context.filename)) return {};
    const check = (node) => {
      for (const src of importSources(node)) {
        const spec = String(src.value);
        if (spec.startsWith("node:") || NODE_BUILTINS.has(spec.split("/")[0])) context.report({ node: src, messageId: "builtin", data: { layer, name: spec } });
      }
    };
    const ambient = (node, name) => context.report({ node, messageId: "ambient", data: { layer, name } });
    return {
      ImportDeclaration: check,
      ImportExpression: check,
      ExportAllDeclaration: check,
      ExportNamedDeclaration: check,
      "MemberExpression[object.name='Date'][property.name='now']": (n) => ambient(n, "Date.now"),
      "NewExpression[callee.name='Date']": (n) => ambient(n, "new Date"),
      "MemberExpression[object.name='Math'][property.name='random']": (n) => ambient(n, "Math.random"),
      "Identifier[name='performance']": (n) => ambient(n, "performance"),
      "MemberExpression[object.name='process']": (n) => ambient(n, "process"),
      "CallExpression[callee.name='setTimeout']": (n) => ambient(n, "setTimeout"),
      "CallExpression[callee.name='setInterval']": (n) => ambient(n, "setInterval"),
    };
  },
};

export default { rules: { "layer-direction": layerDirection, "pure-core": pureCore } };
