// npm run openapi: writes openapi/openapi.json from the route schemas.
import fs from 'node:fs'
import { generateOpenApiDocument, OPENAPI_FILE } from './openapi.js'

fs.writeFileSync(OPENAPI_FILE, await generateOpenApiDocument())
process.stdout.write(`wrote ${OPENAPI_FILE}\n`)
