"""Central differential privacy for federated rounds, compatible with SecAgg+.

DP-FedAvg (McMahan et al., ICLR 2018, "Learning Differentially Private Recurrent
Language Models"): each client clips its update to an L2 norm C before it leaves the
device, the server adds Gaussian noise of standard deviation sigma * C to the sum of
the updates (sigma * C / n to their mean over n clients), and a privacy accountant
composes the rounds. Secure aggregation only ever shows the server the sum, so the
noise goes onto the aggregate: this is Flower's "DP + SecAgg" pattern.

Framework-free: numpy and the ``dp-accounting`` library only. The modules are
imported one by one (``common.privacy.clipping`` on a device needs no accountant).
"""
