print("coffre-bench")
