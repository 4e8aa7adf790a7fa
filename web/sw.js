/* digitnet service worker: the whole build, cached, so the page works offline.
 *
 * build.py replaces __BUILD_VERSION__ with the build's content hash and __PRECACHE__ with
 * the JSON list of every file of the build (relative to this script), and __OPTIONAL__
 * with the list of optional files (cached on first use only).
 *
 * Each file is downloaded once: on a first visit the page waits until this worker
 * controls it, and every precache-listed file the page fetches is stored as it arrives
 * (install fetches nothing but the manifest); once the page is ready it asks for the rest
 * ("precache" message). On an update, unchanged files (same sha256 in build-manifest.json)
 * are copied from the previous cache instead of being downloaded again. Requests are
 * served cache-first; old caches are deleted on activate.
 */
"use strict";

const VERSION = "__BUILD_VERSION__";
const PREFIX = "digitnet-";
const CACHE = PREFIX + VERSION;
const PRECACHE = __PRECACHE__;
// Optional files (the training packages): never fetched ahead, cached when first used.
const OPTIONAL = __OPTIONAL__;

const SCOPE = new URL("./", self.location.href);
const MANIFEST_URL = new URL("build-manifest.json", SCOPE).href;
const INDEX_URL = new URL("index.html", SCOPE).href;
const LISTED = new Set(PRECACHE.map((path) => new URL(path, SCOPE).href));
const LAZY = new Set(OPTIONAL.map((path) => new URL(path, SCOPE).href));

function keyFor(url) {
  const u = new URL(url);
  u.hash = "";
  u.search = "";
  if (u.href === SCOPE.href || u.pathname.endsWith("/")) return new URL("index.html", u).href;
  return u.href;
}

async function fetchManifest() {
  const response = await fetch(MANIFEST_URL, { cache: "no-cache" });
  if (!response.ok) throw new Error(`build-manifest.json: HTTP ${response.status}`);
  return { response: response.clone(), manifest: await response.json() };
}

/** Copy files whose sha256 did not change from older digitnet caches. */
async function reuseUnchanged(cache, manifest) {
  for (const name of await caches.keys()) {
    if (!name.startsWith(PREFIX) || name === CACHE) continue;
    const old = await caches.open(name);
    const oldResponse = await old.match(MANIFEST_URL);
    if (!oldResponse) continue;
    let oldFiles;
    try {
      oldFiles = (await oldResponse.json()).files || {};
    } catch {
      continue;
    }
    for (const [path, meta] of Object.entries(manifest.files || {})) {
      const url = new URL(path, SCOPE).href;
      if (!oldFiles[path] || oldFiles[path].sha256 !== meta.sha256) continue;
      if (await cache.match(url)) continue;
      const hit = await old.match(url);
      if (hit) await cache.put(url, hit);
    }
  }
}

/**
 * Install (`all` false): a fresh manifest, and unchanged files copied from an older cache
 * only, so a first visit is not slowed down: the page's own requests fill the cache as they
 * happen. "precache" message (`all` true): fetch every listed file still missing.
 */
async function fill(all) {
  const cache = await caches.open(CACHE);
  let manifest;
  const cached = all && (await cache.match(MANIFEST_URL));
  if (cached) {
    manifest = await cached.json();
  } else {
    const fresh = await fetchManifest();
    manifest = fresh.manifest;
    await cache.put(MANIFEST_URL, fresh.response);
    await reuseUnchanged(cache, manifest);
  }
  const missing = [];
  for (const path of all ? PRECACHE : []) {
    const url = keyFor(new URL(path, SCOPE).href);
    if (!(await cache.match(url))) missing.push(url);
  }
  const failed = [];
  await Promise.all(missing.map(async (url) => {
    try {
      await cache.put(url, await download(url, manifest));
    } catch (err) {
      failed.push(`${url}: ${err.message}`);
    }
  }));
  return { ok: failed.length === 0, fetched: missing.length - failed.length, failed };
}

/**
 * A listed file's response. The page's first requests (index.html, styles, scripts) were
 * made before this worker controlled it, so the browser's HTTP cache usually has them:
 * use that copy when its sha256 is the build's, else download.
 */
async function download(url, manifest) {
  const rel = decodeURIComponent(url.slice(SCOPE.href.length));
  const expected = manifest.files && manifest.files[rel] && manifest.files[rel].sha256;
  if (expected) {
    const source = url === INDEX_URL ? SCOPE.href : url; // the navigation was to "./"
    try {
      const local = await fetch(source, { cache: "only-if-cached", mode: "same-origin" });
      if (local.ok) {
        const body = await local.clone().arrayBuffer();
        if ((await sha256(body)) === expected) return local;
      }
    } catch {
      /* not in the HTTP cache */
    }
  }
  const response = await fetch(url, { cache: "no-cache" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response;
}

async function sha256(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

self.addEventListener("install", (event) => {
  event.waitUntil(fill(false).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  const { type } = event.data || {};
  if (type === "claim") {
    event.waitUntil(self.clients.claim());
  } else if (type === "precache") {
    const port = event.ports[0];
    event.waitUntil(fill(true).then(
      (result) => port && port.postMessage({ ...result, version: VERSION }),
      (err) => port && port.postMessage({ ok: false, failed: [String(err)], version: VERSION }),
    ));
  }
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const key = keyFor(request.url);
  if (!LISTED.has(key) && !LAZY.has(key) && key !== INDEX_URL && key !== MANIFEST_URL) return;
  event.respondWith(cacheFirst(event, key));
});

async function cacheFirst(event, key) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key);
  if (hit) return hit;
  // Revalidate with the server so a stale HTTP-cache copy of an older build is never stored.
  const response = await fetch(key, { cache: "no-cache" });
  if (response.ok && response.type === "basic") {
    // Store a copy while the page streams the original (the wasm compiles as it arrives).
    event.waitUntil(cache.put(key, response.clone()).catch(() => {}));
  }
  return response;
}
