type Importer = (url: string) => Promise<unknown>;

let importer: Importer = (url) => import(url);

/**
 * `import()` of a module by its URL, for what the service loads from a path known only at run
 * time (the migrations, src/database/migrator.ts).
 *
 * The bundle's loader (src/service-loader.ts) replaces it with its own `import()`: the bundle is a
 * script that `vm.Script` compiles, where Node 20 gives `import()` no loader without an
 * experimental flag, nor with a code cache even when it is given one (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING).
 */
export const importModule = (url: string): Promise<unknown> => importer(url);

/** Sets how importModule imports: the loader's own `import()`, for the bundle. */
export function setModuleImporter(next: Importer): void {
  importer = next;
}
