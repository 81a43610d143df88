// grpo-plotly-loader.js: part of the book "GRPO, interactively" (copied to _static/ by _ext/grpo_book.py).
//
// A page of the book holds its figures as inline scripts (grpo_core.viz.plots.BookRenderer). This
// script lets them wait: a figure registers with window.grpoPlotly.whenVisible(element, draw), and
// is drawn when it comes within a screen or so of the viewport. plotly.min.js (about 4.8 MB) is
// loaded once, when the first figure is needed, so the first screen of text and equations does not
// wait for it.
(function () {
  "use strict";
  if (window.grpoPlotly) { return; }
  var here = document.currentScript && document.currentScript.src;
  var plotlySrc = here ? here.replace(/[^\/?#]*([?#].*)?$/, "plotly.min.js") : "_static/plotly.min.js";
  var loading = null;

  function load() {
    if (window.Plotly) { return Promise.resolve(window.Plotly); }
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = plotlySrc;
        // plotly.min.js is a UMD bundle: where an AMD loader (require.js) is on the page it would
        // register as a module instead of defining window.Plotly, so define is hidden while it runs.
        var define = window.define;
        window.define = undefined;
        script.onload = function () { window.define = define; resolve(window.Plotly); };
        script.onerror = function () {
          window.define = define;
          reject(new Error("grpo-plotly-loader: could not load " + plotlySrc));
        };
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  function run(el) {
    var draw = el.grpoDraw;
    if (!draw) { return; }
    el.grpoDraw = null;
    if (observer) { observer.unobserve(el); }
    load().then(function () { draw(); });
  }

  var observer = ("IntersectionObserver" in window) ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) { if (entry.isIntersecting) { run(entry.target); } });
  }, {rootMargin: "100% 0px"}) : null;

  window.grpoPlotly = {
    load: load,
    // draw(el) now if there is no IntersectionObserver, else when el nears the viewport
    whenVisible: function (el, draw) {
      el.grpoDraw = draw;
      if (observer) { observer.observe(el); } else { run(el); }
    },
    // every figure still waiting, e.g. before printing
    drawAll: function () {
      document.querySelectorAll(".grpo-plotly").forEach(run);
    }
  };
  window.addEventListener("beforeprint", window.grpoPlotly.drawAll);
})();
