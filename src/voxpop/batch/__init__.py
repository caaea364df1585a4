"""Batch prediction on a Ray cluster with Ray Data (`voxpop predict --address`).

Ray is imported inside `voxpop.batch.raydata`'s functions; without --address the commands never
import this package, and `voxpop.ensemble` imports no Ray.
"""
