"""The live device: a stream in, decisions out, federated rounds in the background."""
