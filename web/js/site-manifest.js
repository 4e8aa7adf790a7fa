// build-manifest.json, fetched once: the shipped models, the pad's default model and the
// training form's recipes and limits (written by the build from digitnet's own definitions).

let manifest = null;

/** Resolves with the parsed manifest; rejects with a readable Error. */
export function siteManifest() {
  if (!manifest) {
    const url = new URL("build-manifest.json", document.baseURI);
    manifest = fetch(url)
      .then((r) => {
        if (!r.ok) throw new Error(`build-manifest.json: HTTP ${r.status}`);
        return r.json();
      })
      .catch((err) => {
        manifest = null; // a later call tries again
        throw new Error(`the site's build manifest could not be read (${err.message})`);
      });
  }
  return manifest;
}
