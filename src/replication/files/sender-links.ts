/**
 * Symlinks in the file-sync sender's trees (sender.ts): a link whose target stays inside its tree is
 * synced with a relative target; one that leads outside is not synced, and reported once.
 */
import { relativizeLinkTarget } from './paths.js';
import type { ManifestEntry } from './protocol.js';
import type { EventSink } from './receiver.js';

export class PortableLinks {
  private readonly skippedLinks = new Set<string>();

  /** `opts` is the sender's options (events read when used). */
  constructor(private readonly opts: { readonly events?: EventSink }) {}

  /** Symlinks not synced because they point outside their tree. */
  get skipped(): number {
    return this.skippedLinks.size;
  }

  /** Links are made relative when they stay inside the tree; others are skipped and reported once. */
  portable(t: { readonly root: string; readonly cfg: { readonly name: string } }, e: ManifestEntry): ManifestEntry | undefined {
    if (e.type !== 'link') return e;
    const target = relativizeLinkTarget(t.root, e.path, e.target);
    const key = `${t.cfg.name}/${e.path}`;
    if (target === null) {
      if (!this.skippedLinks.has(key)) {
        this.skippedLinks.add(key);
        this.opts.events?.emit({
          type: 'files_link_skipped',
          severity: 'warning',
          message: `Not syncing symlink ${e.path} in tree "${t.cfg.name}": its target "${e.target}" is outside the tree.`,
          details: { tree: t.cfg.name, path: e.path, target: e.target },
        });
      }
      return undefined;
    }
    this.skippedLinks.delete(key);
    return { ...e, target };
  }
}
