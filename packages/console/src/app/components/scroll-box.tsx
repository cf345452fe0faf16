import type { ComponentChildren } from 'preact';

/**
 * The box a table scrolls sideways in on a narrow window. It is focusable and named, so keyboard
 * users can scroll it too (WCAG 2.1.1; axe `scrollable-region-focusable`).
 */
export function ScrollBox({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
