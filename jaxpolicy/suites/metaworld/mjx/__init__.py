"""MetaWorld v3 in MuJoCo MJX: converted models (`convert`), pure batched environments
(`env`), MetaWorld's recorded resets (`resets`), the success predicates (`tasks`) and the
scripted experts driving MJX (`experts`). docs/environments.md says how each was checked
against the real MetaWorld.
"""
