// Cairn explorer live updates: poll /api/status; when the tip moves, update the header and reload the
// block tree (if this page shows one). Every page is complete without this script.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var body = document.body;
  var tip = body.dataset.tip;
  var polls = 0;
  var treeHtml = null; // the last fragment drawn: an unchanged tree is left alone (no flicker, no lost hover)

  function reloadTree() {
    var box = document.getElementById("tree");
    if (!box) return Promise.resolve();
    return fetch(box.dataset.fragment, { cache: "no-store" }).then(function (response) {
      if (!response.ok) return;
      return response.text().then(function (html) {
        if (html === treeHtml) return;
        treeHtml = html;
        box.innerHTML = html;
      });
    });
  }

  function poll() {
    polls += 1;
    fetch(body.dataset.statusUrl, { cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (status) {
        // a stale block does not move the tip: reload the tree every 5th poll anyway
        var moved = status.tip !== tip;
        if (moved) {
          tip = status.tip;
          body.dataset.tip = tip;
          document.getElementById("live-height").textContent = status.height;
          var link = document.getElementById("live-tip");
          link.textContent = tip.slice(0, 8) + "\u2026" + tip.slice(-6);
          link.title = tip;
          link.href = link.href.replace(/[0-9a-f]{64}$/, tip);
        }
        if (moved || polls % 5 === 0) return reloadTree();
      })
      .catch(function () { /* the node is busy or restarting: try again next time */ })
      .then(function () { window.setTimeout(poll, POLL_MS); });
  }

  window.setTimeout(poll, POLL_MS);
})();
