"""~/set_voice and ~/remove_voice: named voices added, replaced or removed at run time, without a reload.

A voice is prepared on the worker thread (it may encode a clone's reference: torch work), after the utterance
being spoken, so that utterance is never affected; texts already queued keep the voice fields they were
given when they arrived (QueuedText.voice). The service callbacks wait for the worker in the node's
reentrant group, so stop, diagnostics and the other inputs keep being served meanwhile."""

from __future__ import annotations

import concurrent.futures

from qwen3_tts_ros.node.worker import SynthesisWorker
from qwen3_tts_ros.srv import RemoveVoice, SetVoice

# Longest wait for the worker: the utterance being spoken, then the voice's preparation.
SET_VOICE_TIMEOUT_S = 300.0


class VoiceServices:
    """The two services' callbacks; `refusal()` says why voices cannot change now ("" while configured)."""

    def __init__(self, worker: SynthesisWorker, log, refusal):
        self._worker = worker
        self._log = log
        self._refusal = refusal

    def create(self, node, group) -> list:
        """The services, as (destroy function, entity) pairs for the node to destroy at cleanup."""
        services = ((SetVoice, "~/set_voice", self.on_set), (RemoveVoice, "~/remove_voice", self.on_remove))
        return [
            (node.destroy_service, node.create_service(kind, name, callback, callback_group=group))
            for kind, name, callback in services
        ]

    def on_set(self, request: SetVoice.Request, response: SetVoice.Response) -> SetVoice.Response:
        name, spec = request.name, request.spec
        refusal = self._refusal()
        if refusal:
            return self._answer(response, False, f"set_voice {name!r} refused: {refusal}")
        future = self._worker.call(lambda: self._worker.model.set_voice(name, spec))
        try:
            message = future.result(timeout=SET_VOICE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            return self._answer(response, False, f"set_voice {name!r}: the worker was busy for too long")
        except ValueError as exc:  # VoiceSettingsError names the field
            return self._answer(response, False, f"set_voice {name!r} refused: {exc}")
        except Exception as exc:  # noqa: BLE001 - answered, not raised into rclpy
            return self._answer(response, False, f"set_voice {name!r} failed: {type(exc).__name__}: {exc}")
        return self._answer(response, True, message)

    def on_remove(self, request: RemoveVoice.Request, response: RemoveVoice.Response) -> RemoveVoice.Response:
        refusal = self._refusal()
        if refusal:
            return self._answer(response, False, f"remove_voice {request.name!r} refused: {refusal}")
        try:
            self._worker.model.voices.remove(request.name)  # VoiceBook: thread-safe, no torch work
        except ValueError as exc:
            return self._answer(response, False, f"remove_voice refused: {exc}")
        return self._answer(response, True, f"removed voice {request.name!r}")

    def _answer(self, response, success: bool, message: str):
        if success:  # (rclpy refuses two severities from one call site)
            self._log.info(message)
        else:
            self._log.warning(message)
        response.success, response.message = success, message
        return response
