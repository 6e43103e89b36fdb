// A frontend as a LiveKit user writes one: a token from the endpoint token source, then
// join and publish the (fake) microphone. Query: endpoint, room, identity, [metadata].
const { Room, TokenSource } = window.LivekitClient;
const params = new URLSearchParams(location.search);
const status = document.querySelector("#status");

async function main() {
  const source = TokenSource.endpoint(params.get("endpoint"));
  const options = { roomName: params.get("room"), participantIdentity: params.get("identity") };
  if (params.has("metadata")) options.participantMetadata = params.get("metadata");
  const { serverUrl, participantToken } = await source.fetch(options);
  status.textContent = "token";
  const room = new Room();
  window.room = room;
  await room.connect(serverUrl, participantToken);
  status.textContent = "connected";
  const publication = await room.localParticipant.setMicrophoneEnabled(true);
  status.textContent = `published ${publication.trackSid}`;
}

main().catch((error) => {
  status.textContent = `error: ${error.message}`;
});
