// LiveKit's standard token endpoint, written the way LiveKit's Node docs show it:
// express + livekit-server-sdk, one process. The peer `make bench` measures /v1/token against.
// Environment: PORT, LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET.
import express from 'express';
import { AccessToken, RoomConfiguration } from 'livekit-server-sdk';
import { randomBytes } from 'node:crypto';

const { PORT = '8080', LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET } = process.env;
const app = express();
app.use(express.json());

app.get('/healthz', (_req, res) => res.json({ status: 'ok' }));

app.post('/v1/token', async (req, res) => {
  const body = req.body ?? {};
  const identity = body.participant_identity || `user-${randomBytes(5).toString('hex')}`;
  const roomName = body.room_name || `room-${randomBytes(5).toString('hex')}`;
  const at = new AccessToken(LIVEKIT_API_KEY, LIVEKIT_API_SECRET, {
    identity,
    name: body.participant_name,
    metadata: body.participant_metadata,
    attributes: body.participant_attributes,
    ttl: '10m',
  });
  at.addGrant({
    roomJoin: true,
    room: roomName,
    canPublish: true,
    canSubscribe: true,
    canPublishData: true,
  });
  if (body.room_config) {
    at.roomConfig = RoomConfiguration.fromJson(body.room_config, { ignoreUnknownFields: true });
  }
  const participantToken = await at.toJwt();
  res.status(201).json({
    server_url: LIVEKIT_URL,
    participant_token: participantToken,
    room_name: roomName,
    participant_identity: identity,
    participant_name: body.participant_name ?? '',
  });
});

app.listen(Number(PORT), '127.0.0.1', () => console.log(`listening on ${PORT}`));
