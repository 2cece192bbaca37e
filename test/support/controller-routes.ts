import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer } from '@nestjs/core';
import type { TestApp } from './app.js';

/** One handler of a Nest controller, as Nest's own metadata declares it. */
export interface ControllerRoute {
  /** `GET`, `POST` … */
  method: string;
  /** The path with Fastify-style parameters: `/api/v1/rollouts/:id`. */
  path: string;
  /** The controller class and the handler function, to read more metadata from. */
  type: new (
    ...args: never[]
  ) => unknown;
  handler: (...args: unknown[]) => unknown;
}

/**
 * Every route of every controller in the app, read from Nest's metadata rather than listed by
 * hand, so a test over "every route" cannot miss one added later.
 */
export function controllerRoutes(t: TestApp): ControllerRoute[] {
  const routes: ControllerRoute[] = [];
  for (const module of t.app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const type = wrapper.metatype as (new (...args: never[]) => unknown) | null;
      if (!type) continue;
      const base = String(Reflect.getMetadata(PATH_METADATA, type) ?? '');
      for (const name of Object.getOwnPropertyNames(type.prototype)) {
        const handler = (type.prototype as Record<string, unknown>)[name];
        if (name === 'constructor' || typeof handler !== 'function') continue;
        const sub: unknown = Reflect.getMetadata(PATH_METADATA, handler);
        if (sub === undefined) continue;
        const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod];
        for (const one of Array.isArray(sub) ? sub : [sub]) {
          const path = `/${[base, String(one)]
            .flatMap((p) => p.split('/'))
            .filter(Boolean)
            .join('/')}`;
          routes.push({ method, path, type, handler: handler as ControllerRoute['handler'] });
        }
      }
    }
  }
  return routes;
}
