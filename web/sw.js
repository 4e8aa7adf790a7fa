/* digitnet service worker: the whole build, cached and checked, so the page works offline.
 *
 * build.py replaces __BUILD_VERSION__ with the build's content hash, __PRECACHE__ with the
 * JSON list of every file of the build (relative to this script) and __OPTIONAL__ with the
 * optional files (cached on first use only).
 *
 * Every response stored has the sha256 that this version's build-manifest.json names (and
 * the manifest must carry this version): a file that differs (an upload still arriving, a
 * stale copy on the way) is never cached; a download is tried again, and a file still
 * wrong is reported to the page, which then does not claim to work offline.
 *
 * First visit (no version active yet): install stores the manifest only and takes over at
 * once; the page's own requests are stored as they arrive, and once the page is ready it
 * asks for the rest ("precache" message; the reply says whether everything is cached).
 * Update (an older version is active): install stores every precache file (unchanged ones
 * copied from the older cache, the rest downloaded) and fails unless all of them verify, so
 * the older version keeps serving until a complete new one exists; only then does the new
 * one take over, and older caches are deleted when it activates.
 */
"use strict";

const VERSION = "__BUILD_VERSION__";
const PREFIX = "digitnet-";
const CACHE = PREFIX + VERSION;
const PRECACHE = __PRECACHE__;
// Optional files (the training packages): never fetched ahead, cached when first used.
const OPTIONAL = __OPTIONAL__;
const ATTEMPTS = 3; // downloads of one file before it counts as failed
const RETRY_MS = 1000; // pause before the second download, doubled before each further one

const SCOPE = new URL("./", self.location.href);
const MANIFEST_URL = new URL("build-manifest.json", SCOPE).href;
const INDEX_URL = new URL("index.html", SCOPE).href;
const LISTED = new Set(PRECACHE.map((path) => keyFor(new URL(path, SCOPE).href)));
const LAZY = new Set(OPTIONAL.map((path) => keyFor(new URL(path, SCOPE).href)));

function keyFor(url) {
  const u = new URL(url);
  u.hash = "";
  u.search = "";
  if (u.href === SCOPE.href || u.pathname.endsWith("/")) return new URL("index.html", u).href;
  return u.href;
}

/** The file's path in the build (a key of the manifest's `files`). */
function pathOf(url) {
  return decodeURIComponent(url.slice(SCOPE.href.length));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function sha256(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether `response` (left unread) holds this version's `url`: the manifest's sha256, or
 * for the manifest itself this version. */
async function verified(url, response, manifest) {
  const body = await response.clone().arrayBuffer();
  if (url === MANIFEST_URL) {
    try {
      return JSON.parse(new TextDecoder().decode(body)).version === VERSION;
    } catch {
      return false;
    }
  }
  const entry = manifest && manifest.files && manifest.files[pathOf(url)];
  return Boolean(entry) && (await sha256(body)) === entry.sha256;
}

let manifestPromise = null;

/** This version's build manifest: stored by install, downloaded again if the cache lost it. */
function manifest() {
  if (!manifestPromise) {
    manifestPromise = (async () => {
      const cache = await caches.open(CACHE);
      let response = await cache.match(MANIFEST_URL);
      if (!response) {
        response = await download(MANIFEST_URL, null);
        await cache.put(MANIFEST_URL, response.clone());
      }
      return response.json();
    })();
    manifestPromise.catch(() => (manifestPromise = null));
  }
  return manifestPromise;
}

/**
 * A verified response for `url`, or an Error naming the file and the last problem after
 * ATTEMPTS downloads. The page's first requests were made before this worker controlled
 * it, so the browser's HTTP cache often holds the file: that copy is used if it verifies.
 */
async function download(url, files) {
  const source = url === INDEX_URL ? SCOPE.href : url; // the navigation was to "./"
  try {
    const local = await fetch(source, { cache: "only-if-cached", mode: "same-origin" });
    if (local.ok && (await verified(url, local, files))) return local;
  } catch {
    /* not in the HTTP cache */
  }
  let problem = "";
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(RETRY_MS * 2 ** (attempt - 1));
    try {
      // After a wrong copy, "reload" goes past every cache to the server.
      const response = await fetch(url, { cache: attempt ? "reload" : "no-cache" });
      if (!response.ok) problem = `HTTP ${response.status}`;
      else if (await verified(url, response, files)) return response;
      else problem = "its bytes differ from build-manifest.json (a deployment still in progress?)";
    } catch (err) {
      problem = err.message;
    }
  }
  throw new Error(`${pathOf(url)}: ${problem}`);
}

/** Copy into `cache` each file of this version that an older digitnet cache holds with the
 * right bytes (an update downloads only what changed, and keeps the training packages). */
async function reuseOlder(cache, files) {
  const wanted = [...LISTED, ...LAZY].filter((url) => url !== MANIFEST_URL);
  for (const name of await caches.keys()) {
    if (!name.startsWith(PREFIX) || name === CACHE) continue;
    const older = await caches.open(name);
    for (const url of wanted) {
      if (await cache.match(url)) continue;
      const hit = await older.match(url);
      if (hit && (await verified(url, hit, files))) await cache.put(url, hit);
    }
  }
}

/**
 * The manifest and what older caches hold, then (`everything`) every precache file still
 * missing. Resolves with {ok, fetched, failed: ["path: why", …], version}.
 */
async function fill(everything) {
  const cache = await caches.open(CACHE);
  const files = await manifest();
  await reuseOlder(cache, files);
  const missing = [];
  for (const url of everything ? LISTED : []) {
    if (!(await cache.match(url))) missing.push(url);
  }
  const failed = [];
  await Promise.all(missing.map(async (url) => {
    try {
      await cache.put(url, await download(url, files));
    } catch (err) {
      failed.push(err.message);
    }
  }));
  return { ok: failed.length === 0, fetched: missing.length - failed.length, failed, version: VERSION };
}

self.addEventListener("install", (event) => {
  const update = Boolean(self.registration.active);
  event.waitUntil((async () => {
    const result = await fill(update);
    // A failed install is dropped by the browser: the older version stays, and the next
    // update check tries again.
    if (!result.ok) throw new Error(`digitnet ${VERSION} not installed: ${result.failed.join("; ")}`);
    await self.skipWaiting();
  })());
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
  const port = event.ports[0];
  const reply = (data) => port && port.postMessage(data);
  if (type === "claim") {
    event.waitUntil(self.clients.claim());
  } else if (type === "precache") {
    event.waitUntil(fill(true).then(reply, (err) => reply({ ok: false, failed: [err.message], version: VERSION })));
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
  // Revalidate with the server so a stale HTTP-cache copy of an older build is not used.
  const response = await fetch(key, { cache: "no-cache" });
  if (response.ok && response.type === "basic") {
    // Checked and stored from a copy while the page streams the original (the wasm
    // compiles as it arrives).
    event.waitUntil(keepIfVerified(cache, key, response.clone()).catch(() => {}));
  }
  return response;
}

async function keepIfVerified(cache, key, response) {
  if (await verified(key, response, await manifest())) {
    await cache.put(key, response);
  } else {
    console.warn(`digitnet: ${pathOf(key)} differs from build-manifest.json ${VERSION}: not cached`);
    await response.body?.cancel();
  }
}
