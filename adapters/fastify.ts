import type { FastifyInstance, FastifyPluginAsync, HTTPMethods } from 'fastify'
import fp from 'fastify-plugin'
import { Groupcache, InvalidOptionError, toPeerRequest, type GroupcacheOptions } from '../src/index.js'
import { openEndpointWarning, resolveInstance } from './shared.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** groupcache is the node this app serves. */
    groupcache: Groupcache
  }
  interface FastifyRequest {
    /** groupcache is the node this app serves, for route handlers. */
    groupcache: Groupcache
  }
}

/** FastifyGroupcacheOptions: options for a new instance, or an existing one. */
export type FastifyGroupcacheOptions = GroupcacheOptions | { groupcache: Groupcache }

// Every method reaches the endpoint, which answers 405 itself, so that all
// adapters and `listen()` answer alike.
const METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']

async function groupcachePlugin(app: FastifyInstance, options: FastifyGroupcacheOptions): Promise<void> {
  if (app.hasDecorator('groupcache')) {
    throw new InvalidOptionError('groupcache is already registered on this Fastify instance')
  }
  const { instance, owned } = resolveInstance('groupcache' in options ? options.groupcache : options)
  app.decorate('groupcache', instance)
  if (!app.hasRequestDecorator('groupcache')) {
    app.decorateRequest('groupcache', {
      getter() {
        return instance
      },
    })
  }
  const warning = openEndpointWarning(instance)
  if (warning !== undefined) app.log.warn(warning)
  if (owned) app.addHook('onClose', () => instance.close())

  // The endpoint lives in an encapsulated child: its body parser (none: the
  // body is never read) and anything else it sets stay out of the host app.
  await app.register(async (child) => {
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('*', (_request, _payload, done) => done(null))
    child.route({
      method: METHODS,
      url: `${instance.basePath}*`,
      handler: async (request, reply) => {
        const answer = await instance.handler(toPeerRequest(request.raw, reply.raw))
        const body = Buffer.from(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength)
        return reply.code(answer.status).headers(answer.headers).send(body)
      },
    })
  })
}

/**
 * groupcache is a Fastify plugin that makes the app a groupcache node:
 * `await app.register(groupcache, { self, peers, secret })` serves the peer
 * endpoint under `basePath` and decorates `app.groupcache` and
 * `request.groupcache`. Given options, it owns the instance and closes it
 * with the app; given `{ groupcache: instance }`, the caller keeps it.
 */
export const groupcache: FastifyPluginAsync<FastifyGroupcacheOptions> = fp(groupcachePlugin, {
  fastify: '5.x',
  name: 'groupcache',
})

export default groupcache
