import tseslint from "typescript-eslint";
import layers from "./eslint-rules/layers.js";

export default tseslint.config(
  { ignores: ["node_modules/", "build/", "out/", ".cache/", "scratch/", "guests/**/build/", "native/*/build/"] },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.js", "**/*.mjs"],
    plugins: { smcvisor: layers },
    rules: {
      "smcvisor/layer-direction": "error",
      "smcvisor/pure-core": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    // The native addons' package entry points are CommonJS: npm loads them with require().
    files: ["native/**/*.js"],
    languageOptions: { sourceType: "commonjs" },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
