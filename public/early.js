// Runs before the app: on a slow phone the page shows its forms seconds before the app can
// act on them, and a tap on a form's button would reload the page and wipe what was typed.
// Until the app says it is ready, a submitted form is held here with what was typed in it,
// for the app to carry out once it runs (frontend/src/engine/session.rs, `take_early`).
(function () {
  'use strict';
  var held = { values: {}, submitted: null };
  window.__fieldmeshEarly = held;
  document.addEventListener(
    'input',
    function (event) {
      var field = event.target;
      if (!window.__fieldmeshReady && field && field.id) held.values[field.id] = field.value;
    },
    true,
  );
  document.addEventListener(
    'submit',
    function (event) {
      if (window.__fieldmeshReady) return;
      event.preventDefault();
      event.stopPropagation();
      var form = event.target;
      var fields = form.querySelectorAll('input[id]');
      for (var i = 0; i < fields.length; i++) held.values[fields[i].id] = fields[i].value;
      held.submitted = form.getAttribute('data-testid');
      form.classList.add('starting');
    },
    true,
  );
})();
