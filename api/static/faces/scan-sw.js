// The gate scanner's service worker (served as /scan-sw.js, scope /scan). It keeps the page and its
// assets so that a gate reloaded, or restarted, without the network still opens in offline mode.
// Network first: online, every file comes from the server as before (and refreshes the copy kept
// here); only when the network fails is the kept copy used. API requests are never touched.

const CACHE = "chongjun-scan-v1";
const SHELL = ["/scan", "/faces/scan.js", "/faces/offline.js", "/faces/faces.css", "/faces/jsQR.js", "/faces/icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(url.pathname, copy)).catch(() => {});
      }
      return response;
    }).catch(() => caches.match(url.pathname).then((kept) => kept || Response.error())),
  );
});
