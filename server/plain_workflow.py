"""Plain FedAvg fit round (no secure aggregation) that gives up on silent clients.

Flower's ``default_fit_workflow`` waits for replies with no timeout, so one dead node
would hang the run forever; this one waits ``timeout`` seconds and counts the rest as
failures, like the SecAgg+ workflow does with its own timeout.
"""

from __future__ import annotations

from typing import cast

from flwr.app import Message
from flwr.app.message_type import MessageType
from flwr.common import Code, FitRes
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext
from flwr.server.client_proxy import ClientProxy
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid


class PlainFitWorkflow:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __call__(self, grid: Grid, context: LegacyContext) -> None:
        cfg = context.state.config_records[MAIN_CONFIGS_RECORD]
        current_round = cast(int, cfg[Key.CURRENT_ROUND])
        arr_record = context.state.array_records[MAIN_PARAMS_RECORD]
        parameters = compat.arrayrecord_to_parameters(arr_record, keep_input=True)
        instructions = context.strategy.configure_fit(
            server_round=current_round, parameters=parameters, client_manager=context.client_manager
        )
        if not instructions:
            return
        proxies = {proxy.node_id: proxy for proxy, _ in instructions}
        out = [
            Message(
                content=compat.fitins_to_recorddict(fitins, True),
                dst_node_id=proxy.node_id,
                message_type=MessageType.TRAIN,
                group_id=str(current_round),
            )
            for proxy, fitins in instructions
        ]
        replies = list(grid.send_and_receive(out, timeout=self.timeout))
        results: list[tuple[ClientProxy, FitRes]] = []
        failures: list[tuple[ClientProxy, FitRes] | BaseException] = []
        answered = set()
        for msg in replies:
            answered.add(msg.metadata.src_node_id)
            if msg.has_content():
                fitres = compat.recorddict_to_fitres(msg.content, False)
                pair = (proxies[msg.metadata.src_node_id], fitres)
                (results if fitres.status.code == Code.OK else failures).append(pair)
            else:
                failures.append(RuntimeError(str(msg.error)))
        for node_id in set(proxies) - answered:
            failures.append(TimeoutError(f"node {node_id}: no reply within {self.timeout:.0f} s"))
        params, metrics = context.strategy.aggregate_fit(current_round, results, failures)
        if params is not None:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
                params, True
            )
            context.history.add_metrics_distributed_fit(server_round=current_round, metrics=metrics)
