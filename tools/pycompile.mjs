// Compiles the Python sources in zips (wheels, the standard library's zip) to bytecode
// with Pyodide's own Python, in Node (the build's tools/pycompile.py runs this; the work
// itself is tools/pycompile_inside.py).
//
//   node tools/pycompile.mjs <pyodide dir> <in.zip> <out.zip> [<in.zip> <out.zip> ...]
//
// A .whl is compiled for where Pyodide installs wheels (site-packages), any other zip for
// where Pyodide imports its standard library zip from. Prints one JSON object:
// {<in.zip>: {compiled, kept}}. Exits non-zero on any error.
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";

const [pyodideDir, ...pairs] = process.argv.slice(2);
if (!pyodideDir || pairs.length === 0 || pairs.length % 2) {
  console.error("usage: node tools/pycompile.mjs <pyodide dir> <in.whl> <out.whl> [...]");
  process.exit(2);
}
const { loadPyodide } = await import(pathToFileURL(`${pyodideDir}/pyodide.mjs`).href);
const pyodide = await loadPyodide({ indexURL: `${pyodideDir}/` });
pyodide.runPython(readFileSync(new URL("pycompile_inside.py", import.meta.url), "utf8"));
const compileArchive = pyodide.globals.get("compile_archive");
const site = pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
const stdlibZip = pyodide.runPython("import sys; next(p for p in sys.path if p.endswith('.zip'))");
const report = {};
for (let i = 0; i < pairs.length; i += 2) {
  const [src, dst] = pairs.slice(i, i + 2);
  const inside = `/tmp/${basename(src)}`;
  pyodide.FS.writeFile(inside, readFileSync(src));
  const result = compileArchive(inside, `${inside}.out`, src.endsWith(".whl") ? site : stdlibZip);
  report[src] = result.toJs({ dict_converter: Object.fromEntries });
  result.destroy();
  writeFileSync(dst, pyodide.FS.readFile(`${inside}.out`));
}
console.log(JSON.stringify(report));
