import { h, replace } from '../dom.js';

/** Asks for the server's token once; it is kept in this tab only (sessionStorage). */
export function tokenDialog(dialog, { submit }) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: true, 'aria-label': 'token' });
  const message = h('p', { class: 'muted' });
  const form = h(
    'form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (value === '') return;
        dialog.close();
        submit(value);
      },
    },
    h('h2', {}, 'This server needs a token'),
    message,
    h('label', {}, 'Token ', input),
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'ghost', onclick: () => dialog.close() }, 'Cancel'), h('button', { type: 'submit' }, 'Connect')),
  );
  replace(dialog, form);
  return {
    open(reason) {
      message.textContent = reason ?? 'Enter the token porch serve was started with (--token or PORCH_TOKEN). It stays in this tab only.';
      input.value = '';
      if (!dialog.open) dialog.showModal();
      input.focus();
    },
  };
}
