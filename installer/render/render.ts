import { catalog, type FileKind } from './catalog.js';
import type { RenderContext } from './context.js';
import { createRenderer } from './handlebars.js';

export interface RenderedFile {
  /** Relative to the prefix. */
  target: string;
  content: string;
  mode: number;
  secret: boolean;
  kind: FileKind;
  serviceOwned?: boolean;
}

export type Render = ReturnType<typeof createRenderer>;

export async function renderTree(ctx: RenderContext, render: Render = createRenderer()): Promise<RenderedFile[]> {
  const specs = catalog(ctx);
  return Promise.all(
    specs.map(async (spec) => ({
      target: spec.target,
      content: await render(spec.template, spec.data ? { ...ctx, ...spec.data } : ctx),
      mode: spec.mode,
      secret: spec.secret,
      kind: spec.kind,
      ...(spec.serviceOwned ? { serviceOwned: true } : {}),
    })),
  );
}
